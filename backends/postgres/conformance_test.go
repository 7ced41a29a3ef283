package postgres

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
	"github.com/electionkit/election/internal/teststore"
)

// harness gives one conformance subtest its own table prefix on a shared
// postgres (subtests run one at a time), and every backend its own
// faultproxy link, which its pool, renewal and listening connections all
// take. Close undoes the store faults the subtest left.
type harness struct {
	srv    *teststore.Postgres
	prefix string

	clients faultproxy.Clients
}

var _ conformance.Harness = (*harness)(nil)

// conformanceTTL is the TTL the suite campaigns with. The core's claims and
// releases get RenewInterval/2 = TTL/6 each; with 1s (166ms) they timed
// out under -race on a loaded 2-core machine, and each timeout closes a
// pooled connection, so the next one waited for a new backend process.
// Two warm connections per pool (pool_min_conns) and 2s keep them in time.
const conformanceTTL = 2 * time.Second

var harnessCount atomic.Int64

func (h *harness) NewBackend(ctx context.Context) (election.Backend, conformance.Link, error) {
	return h.clients.Dial(h.srv.Addr, func(addr string) (election.Backend, error) {
		return OpenURL(ctx, serverURL(addr, url.Values{"table_prefix": {h.prefix}, "pool_min_conns": {"2"}}))
	})
}

func (h *harness) CloseBackend(b election.Backend) error { return h.clients.Close(b) }

func (h *harness) Store() conformance.Store { return h.srv }

func (h *harness) Timing() conformance.Timing {
	// Expiry is found by the Backend's holder timer at the holder's
	// remaining TTL: a read of the session, a read of its elections
	// (promoting a claim in line), then the waiter's confirmation;
	// generous for -race on 2 cores.
	return conformance.Timing{TTL: conformanceTTL, ExpiryLag: 500 * time.Millisecond}
}

// Capabilities: Notify (watches by callback, with no goroutine) and Queue
// (a line of waiting claims, line.go).
func (h *harness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{Notify: true, Queue: true}
}

func (h *harness) InvalidNames() []string { return nil } // any name the core accepts is stored

func (h *harness) Close() error {
	errs := []error{h.clients.CloseAll()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = h.srv.Resume(ctx) // fails only when stopped
	if h.srv.PID() == 0 {
		errs = append(errs, h.srv.Start(ctx))
	}
	return errors.Join(errs...)
}

func TestConformance(t *testing.T) {
	srv := startServer(t)
	conformance.Run(t, func(ctx context.Context, _ testing.TB) (conformance.Harness, error) {
		return &harness{srv: srv, prefix: fmt.Sprintf("conformance_%d_", harnessCount.Add(1))}, nil
	})
}
