package consul

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/conformance"
	"github.com/electionkit/election/internal/faultproxy"
)

// conformanceTTL is the TTL the suite campaigns with: the agents' lowered
// session_ttl_min.
const conformanceTTL = testMinTTL

// conformanceLockDelay: the suite runs without the default lock-delay. Its
// backend contract says that a claim the store expired leaves the election
// vacant and claimable at once, which a lock-delay postpones by design (a
// claim is then refused with no holder for one TTL). The default is proven
// by its own tests: TestBackend/LockDelay, TestStaleInvalidation,
// TestOperatorActions/DestroySessionLockDelay, and the robustness suite.
const conformanceLockDelay = NoLockDelay

// TestConformance runs the shared suite against real Consul servers, one
// per subtest, each client behind its own fault proxy.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(ctx context.Context, st testing.TB) (conformance.Harness, error) {
		// The agent belongs to the subtest; the harness's Close stops it.
		return &harness{agent: startAgent(st, agentOptions{})}, nil
	})
}

type harness struct {
	agent   *testAgent
	clients faultproxy.Clients
}

var _ conformance.Harness = (*harness)(nil)

func (h *harness) NewBackend(ctx context.Context) (election.Backend, conformance.Link, error) {
	return h.clients.Dial(h.agent.addr, func(addr string) (election.Backend, error) {
		return New(Config{Address: addr, MinTTL: testMinTTL, WatchWait: 5 * time.Second, LockDelay: conformanceLockDelay})
	})
}

func (h *harness) CloseBackend(b election.Backend) error { return h.clients.Close(b) }

func (h *harness) Store() conformance.Store { return h.agent.Process }

// Timing: Consul invalidates a session between TTL and 2×TTL after its last
// renewal (the leader arms its timer at 2×TTL), then deletes the key in one
// Raft write and wakes the blocking queries; 500ms covers timer and
// scheduling slack on a loaded machine.
func (h *harness) Timing() conformance.Timing {
	return conformance.Timing{TTL: conformanceTTL, ExpiryLag: conformanceTTL + 500*time.Millisecond}
}

// Capabilities: watches by callback (Notify), sharing one blocking query
// per bucket. No line: an election is one KV key locked by one session, and
// Consul keeps no line of waiting claims.
func (h *harness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{Notify: true}
}

// InvalidNames is empty: names are escaped, so every name the core accepts
// can be stored.
func (h *harness) InvalidNames() []string { return nil }

func (h *harness) Close() error {
	errs := []error{h.clients.CloseAll()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs = append(errs, h.agent.Stop(ctx)) // SIGKILL, paused or not
	return errors.Join(errs...)
}
