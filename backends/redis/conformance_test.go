package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/conformance"
	"github.com/electionkit/election/internal/faultproxy"
)

// harness gives one conformance subtest its own key prefix on a shared
// redis-server (subtests run one at a time), and every backend its own
// faultproxy link. Close undoes the store faults the subtest left.
type harness struct {
	srv    *server
	prefix string

	clients faultproxy.Clients
}

var _ conformance.Harness = (*harness)(nil)

// conformanceTTL is the TTL the suite campaigns with.
const conformanceTTL = time.Second

var harnessCount atomic.Int64

func (h *harness) NewBackend(ctx context.Context) (election.Backend, conformance.Link, error) {
	return h.clients.Dial(h.srv.addr, func(addr string) (election.Backend, error) {
		return OpenURL(ctx, h.url(addr))
	})
}

// url addresses the server at addr with the subtest's prefix. The
// quarantine is the suite's TTL, the longest any candidate of the suite
// uses (raw sessions with longer TTLs never outlive a restart).
func (h *harness) url(addr string) *url.URL {
	q := url.Values{"prefix": {h.prefix}, "dial_timeout": {"1s"}, "quarantine": {conformanceTTL.String()}}
	return &url.URL{Scheme: "redis", Host: addr, Path: "/", RawQuery: q.Encode()}
}

// awaitQuarantine returns once the server claims again: a subtest that
// starts right after redis-server did (the first one, or one after a
// restart) would otherwise see its raw claims refused with no holder.
// Candidates wait the quarantine out by themselves; raw sessions do not.
func (h *harness) awaitQuarantine(ctx context.Context) error {
	b, err := OpenURL(ctx, h.url(h.srv.addr))
	if err != nil {
		return err
	}
	defer b.Close()
	return waitOutQuarantine(ctx, b)
}

// waitOutQuarantine returns once b's primary takes a claim, renewing the
// session it claims with meanwhile (claims need a live session key).
func waitOutQuarantine(ctx context.Context, b *Backend) error {
	s, err := b.OpenSession(ctx, conformanceTTL)
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	req := election.ClaimRequest{Name: "harness-ready", Token: "harness-ready-token", ID: "harness"}
	for {
		claimed, err := s.Claim(ctx, req)
		var taken *election.TakenError
		switch {
		case err == nil:
			return s.Release(ctx, claimed)
		case !errors.As(err, &taken) || taken.Holder.ID != "" || taken.ExpiresIn <= 0:
			return fmt.Errorf("claim while waiting out the quarantine: %w", err)
		}
		if err := s.Renew(ctx, nil); err != nil {
			return fmt.Errorf("renew while waiting out the quarantine: %w", err)
		}
		select {
		case <-time.After(min(taken.ExpiresIn+time.Millisecond, conformanceTTL/3)):
		case <-ctx.Done():
			return fmt.Errorf("waiting out the quarantine: %w", ctx.Err())
		}
	}
}

func (h *harness) CloseBackend(b election.Backend) error { return h.clients.Close(b) }

func (h *harness) Store() conformance.Store { return h.srv.proc }

func (h *harness) Timing() conformance.Timing {
	// Redis expires keys on time and the core claims at the PTTL it was
	// told, so the lag is scheduling only; generous for -race on 2 cores.
	return conformance.Timing{TTL: conformanceTTL, ExpiryLag: 250 * time.Millisecond}
}

// Capabilities: Notify (watches by callback, with no goroutine). An
// election is one key; Redis keeps no line of waiting claims.
func (h *harness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{Notify: true}
}

func (h *harness) InvalidNames() []string { return nil } // any name the core accepts is stored

func (h *harness) Close() error {
	errs := []error{h.clients.CloseAll()}
	// Leave the shared server running for the next subtest.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = h.srv.proc.Resume(ctx) // fails only when stopped
	if h.srv.proc.PID() == 0 {
		errs = append(errs, h.srv.proc.Start(ctx))
	}
	return errors.Join(errs...)
}

func TestConformance(t *testing.T) {
	srv := startServer(t)
	conformance.Run(t, func(ctx context.Context, _ testing.TB) (conformance.Harness, error) {
		h := &harness{
			srv:    srv,
			prefix: fmt.Sprintf("conformance-%d", harnessCount.Add(1)),
		}
		if err := h.awaitQuarantine(ctx); err != nil {
			return nil, err
		}
		return h, nil
	})
}
