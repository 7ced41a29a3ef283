package consul

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/conformance"
	"github.com/electionkit/election/internal/faultproxy"
)

// conformanceTTL is the TTL the suite campaigns with: the agents' lowered
// session_ttl_min.
const conformanceTTL = testMinTTL

// TestConformance runs the shared suite against real Consul servers, one
// per subtest, each client behind its own fault proxy.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(ctx context.Context, st testing.TB) (conformance.Harness, error) {
		// The agent belongs to the subtest; the harness's Close stops it.
		return &harness{agent: startAgent(st, agentOptions{}), links: map[election.Backend]*faultproxy.Proxy{}}, nil
	})
}

type harness struct {
	agent *testAgent

	mu    sync.Mutex
	links map[election.Backend]*faultproxy.Proxy
}

var _ conformance.Harness = (*harness)(nil)

func (h *harness) NewBackend(ctx context.Context) (election.Backend, conformance.Link, error) {
	p, err := faultproxy.New(h.agent.addr)
	if err != nil {
		return nil, nil, err
	}
	b, err := New(Config{Address: p.Addr(), MinTTL: testMinTTL, WatchWait: 5 * time.Second})
	if err != nil {
		p.Close()
		return nil, nil, err
	}
	h.mu.Lock()
	h.links[b] = p
	h.mu.Unlock()
	return b, p, nil
}

func (h *harness) CloseBackend(b election.Backend) error {
	h.mu.Lock()
	p, ok := h.links[b]
	delete(h.links, b)
	h.mu.Unlock()
	if !ok {
		return fmt.Errorf("harness: backend %p was not made by NewBackend or is already closed", b)
	}
	return errors.Join(election.CloseBackend(b), p.Close())
}

func (h *harness) Store() conformance.Store { return h.agent.Process }

// Timing: Consul invalidates a session between TTL and 2×TTL after its last
// renewal (the leader arms its timer at 2×TTL), then deletes the key in one
// Raft write and wakes the blocking queries; 500ms covers timer and
// scheduling slack on a loaded machine.
func (h *harness) Timing() conformance.Timing {
	return conformance.Timing{TTL: conformanceTTL, ExpiryLag: conformanceTTL + 500*time.Millisecond}
}

// InvalidNames is empty: names are escaped, so every name the core accepts
// can be stored.
func (h *harness) InvalidNames() []string { return nil }

func (h *harness) Close() error {
	h.mu.Lock()
	var errs []error
	for b, p := range h.links {
		errs = append(errs, election.CloseBackend(b), p.Close())
	}
	h.links = map[election.Backend]*faultproxy.Proxy{}
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs = append(errs, h.agent.Stop(ctx)) // SIGKILL, paused or not
	return errors.Join(errs...)
}
