package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
	"github.com/electionkit/election/conformance"
)

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
func (h *harness) Timing() conformance.Timing {
	return conformance.Timing{TTL: 300 * time.Millisecond}
}

// Capabilities: the store keeps a line of waiting claims per election.
func (h *harness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{Queue: true}
}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(ctx context.Context, _ testing.TB) (conformance.Harness, error) {
		return &harness{store: memory.NewStore()}, nil
	})
}
