package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
	"github.com/electionkit/election/conformance"
)

const conformanceTTL = 300 * time.Millisecond

type harness struct{ store *memory.Store }

var _ conformance.Harness = (*harness)(nil)

func (h *harness) NewBackend(ctx context.Context) (election.Backend, conformance.Link, error) {
	c := h.store.NewClient()
	return c, c, nil
}

func (h *harness) CloseBackend(b election.Backend) error { return b.(*memory.Client).Close() }
func (h *harness) Store() conformance.Store              { return h.store }
func (h *harness) InvalidNames() []string                { return nil }
func (h *harness) Close() error                          { return nil }

// Timing: expiry is exact on the store's clock, except that the Consul-like
// mode keeps a session up to 2×TTL after its last renewal.
func (h *harness) Timing() conformance.Timing {
	t := conformance.Timing{TTL: conformanceTTL}
	if h.store.Expiry() == memory.ConsulExpiry {
		t.ExpiryLag = conformanceTTL
	}
	return t
}

// Capabilities: only the etcd-like mode keeps a line of waiting claims;
// every mode watches by callback.
func (h *harness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{Queue: h.store.Expiry() == memory.EtcdExpiry, Notify: true}
}

// TestConformance runs the suite once per expiry mode; only the etcd-like
// mode's sessions implement election.Queuer, so only it runs QueuedHandoff.
func TestConformance(t *testing.T) {
	for _, mode := range []memory.Expiry{memory.EtcdExpiry, memory.RedisExpiry, memory.ConsulExpiry} {
		t.Run(mode.String(), func(t *testing.T) {
			conformance.Run(t, func(ctx context.Context, _ testing.TB) (conformance.Harness, error) {
				return &harness{store: memory.NewStore(memory.WithExpiry(mode))}, nil
			})
		})
	}
}
