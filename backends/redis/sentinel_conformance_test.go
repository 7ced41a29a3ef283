package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
	"github.com/electionkit/election/conformance"
	"github.com/electionkit/election/internal/faultproxy"
)

// TestSentinelConformance runs the shared suite through go-redis's failover
// client against a primary, a replica and three Sentinels (quorum 2),
// shared by the subtests, each with a key prefix of its own. Every client
// reaches Sentinels and servers through proxies of its own (one per
// address it dials), so the suite's partition cuts one client off from
// everything. Store faults act on both data servers at once: paused or
// stopped together, they come back in their roles (the Sentinels'
// down-after-milliseconds, 10s, is longer than any store fault of the
// suite, so no failover starts; failovers are
// TestSentinelFailoverHistory's).
func TestSentinelConformance(t *testing.T) {
	primary := startServer(t, "--repl-diskless-sync-delay", "0")
	host, port, _ := net.SplitHostPort(primary.addr)
	replica := startServer(t, "--repl-diskless-sync-delay", "0", "--replicaof", host, port)
	ctx := testContext(t, 30*time.Second)
	waitReplicaOnline(t, ctx, primary, 1)
	sentinels := startSentinels(t, primary, 3, 2, 10*time.Second)
	conformance.Run(t, func(ctx context.Context, _ testing.TB) (conformance.Harness, error) {
		h := &sentinelHarness{
			primary: primary, replica: replica, sentinels: sentinels,
			prefix: fmt.Sprintf("sentinel-conformance-%d", harnessCount.Add(1)),
		}
		if err := h.awaitQuarantine(ctx); err != nil {
			return nil, err
		}
		return h, nil
	})
}

type sentinelHarness struct {
	primary, replica *server
	sentinels        []string
	prefix           string

	mu      sync.Mutex
	clients map[election.Backend]*sentinelClient
}

var _ conformance.Harness = (*sentinelHarness)(nil)

// sentinelClient is one failover client, its Backend and the proxies it
// dials through.
type sentinelClient struct {
	client  *goredis.Client
	backend *Backend
	links   *proxySet
}

// proxySet is a conformance.Link over every address one client dials: a
// proxy per address, made when first dialed (cut at once while the set is
// cut).
type proxySet struct {
	mu      sync.Mutex
	cut     bool
	proxies map[string]*faultproxy.Proxy
}

func (p *proxySet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	p.mu.Lock()
	px := p.proxies[addr]
	if px == nil {
		var err error
		if px, err = faultproxy.New(addr); err != nil {
			p.mu.Unlock()
			return nil, err
		}
		if p.cut {
			if err := px.Cut(ctx); err != nil {
				p.mu.Unlock()
				_ = px.Close()
				return nil, err
			}
		}
		p.proxies[addr] = px
	}
	p.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, network, px.Addr())
}

func (p *proxySet) Cut(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	var errs []error
	for _, px := range p.proxies {
		errs = append(errs, px.Cut(ctx))
	}
	return errors.Join(errs...)
}

func (p *proxySet) Heal(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	var errs []error
	for _, px := range p.proxies {
		errs = append(errs, px.Heal(ctx))
	}
	return errors.Join(errs...)
}

func (p *proxySet) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, px := range p.proxies {
		errs = append(errs, px.Close())
	}
	return errors.Join(errs...)
}

func (h *sentinelHarness) open(ctx context.Context) (*sentinelClient, error) {
	links := &proxySet{proxies: map[string]*faultproxy.Proxy{}}
	client := goredis.NewFailoverClient(&goredis.FailoverOptions{
		MasterName:            "elect",
		SentinelAddrs:         h.sentinels,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		Dialer:                links.dial,
	})
	b, err := New(client, Config{Prefix: h.prefix, Quarantine: conformanceTTL})
	if err != nil {
		_ = client.Close()
		_ = links.close()
		return nil, err
	}
	return &sentinelClient{client: client, backend: b, links: links}, nil
}

func (h *sentinelHarness) NewBackend(ctx context.Context) (election.Backend, conformance.Link, error) {
	c, err := h.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	h.mu.Lock()
	if h.clients == nil {
		h.clients = map[election.Backend]*sentinelClient{}
	}
	h.clients[c.backend] = c
	h.mu.Unlock()
	return c.backend, c.links, nil
}

func (c *sentinelClient) close() error {
	return errors.Join(c.backend.Close(), c.client.Close(), c.links.close())
}

func (h *sentinelHarness) CloseBackend(b election.Backend) error {
	h.mu.Lock()
	c := h.clients[b]
	delete(h.clients, b)
	h.mu.Unlock()
	if c == nil {
		return fmt.Errorf("CloseBackend: not a backend of this harness")
	}
	return c.close()
}

// awaitQuarantine returns once the primary claims again (see the
// single-server harness's).
func (h *sentinelHarness) awaitQuarantine(ctx context.Context) error {
	c, err := h.open(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	s, err := c.backend.OpenSession(ctx, conformanceTTL)
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

func (h *sentinelHarness) Store() conformance.Store { return sentinelStore{h} }

func (h *sentinelHarness) Timing() conformance.Timing {
	return conformance.Timing{TTL: conformanceTTL, ExpiryLag: 250 * time.Millisecond}
}

func (h *sentinelHarness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{Notify: true}
}

func (h *sentinelHarness) InvalidNames() []string { return nil }

// Close closes the clients left open and brings both servers back, in
// their roles, for the next subtest.
func (h *sentinelHarness) Close() error {
	h.mu.Lock()
	var errs []error
	for b, c := range h.clients {
		errs = append(errs, c.close())
		delete(h.clients, b)
	}
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs = append(errs, sentinelStore{h}.Start(ctx))
	return errors.Join(errs...)
}

// sentinelStore is the fault controls over both data servers.
type sentinelStore struct{ h *sentinelHarness }

func (s sentinelStore) both(op func(*server) error) error {
	return errors.Join(op(s.h.primary), op(s.h.replica))
}

func (s sentinelStore) Pause(ctx context.Context) error {
	return s.both(func(srv *server) error { return srv.proc.Pause(ctx) })
}

func (s sentinelStore) Resume(ctx context.Context) error {
	return s.both(func(srv *server) error { return srv.proc.Resume(ctx) })
}

func (s sentinelStore) Stop(ctx context.Context) error {
	return s.both(func(srv *server) error { return srv.proc.Stop(ctx) })
}

// Start starts whichever server is stopped (resuming a paused one) and
// returns once the primary has its replica online again, so that the
// roles the Sentinels know hold.
func (s sentinelStore) Start(ctx context.Context) error {
	err := s.both(func(srv *server) error {
		_ = srv.proc.Resume(ctx) // fails only when stopped
		if srv.proc.PID() == 0 {
			return srv.proc.Start(ctx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	admin := goredis.NewClient(&goredis.Options{Addr: s.h.primary.addr, ContextTimeoutEnabled: true})
	defer admin.Close()
	for {
		info, err := admin.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "role:master") && strings.Contains(info, "state=online") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("primary without its replica online after a start: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
