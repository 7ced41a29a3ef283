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

// TestConformance runs the shared suite against real Consul servers, one
// per subtest, each client behind its own fault proxy, with the default
// lock-delay (the TTL): the harness declares it as the suite's ClaimDelay,
// so that a claim ended without a release may leave the election refused,
// with no holder, for that long.
func TestConformance(t *testing.T) {
	runConformance(t, 0)
}

// TestConformanceNoLockDelay runs the suite with NoLockDelay, where an
// expired claim leaves the election claimable at once.
func TestConformanceNoLockDelay(t *testing.T) {
	runConformance(t, NoLockDelay)
}

func runConformance(t *testing.T, lockDelay time.Duration) {
	conformance.Run(t, func(ctx context.Context, st testing.TB) (conformance.Harness, error) {
		// The agent belongs to the subtest; the harness's Close stops it.
		return &harness{agent: startAgent(st, agentOptions{}), lockDelay: lockDelay}, nil
	})
}

type harness struct {
	agent     *testAgent
	clients   faultproxy.Clients
	lockDelay time.Duration // Config.LockDelay
}

var _ conformance.Harness = (*harness)(nil)

func (h *harness) NewBackend(ctx context.Context) (election.Backend, conformance.Link, error) {
	return h.clients.Dial(h.agent.addr, func(addr string) (election.Backend, error) {
		return New(Config{Address: addr, MinTTL: testMinTTL, WatchWait: 5 * time.Second, LockDelay: h.lockDelay})
	})
}

func (h *harness) CloseBackend(b election.Backend) error { return h.clients.Close(b) }

func (h *harness) Store() conformance.Store { return h.agent.Process }

// Timing: Consul invalidates a session between TTL and 2×TTL after its last
// renewal (the leader arms its timer at 2×TTL), then deletes the key in one
// Raft write and wakes the blocking queries; 500ms covers timer and
// scheduling slack on a loaded machine.
//
// A lock-delay is the ClaimDelay: the time after the session's end during
// which Consul refuses to lock the key. With it, the session's Consul TTL
// is half the suite's TTL, not below MinTTL (the suite's TTL is MinTTL, so
// it stays the TTL), which ExpiryLag already covers.
func (h *harness) Timing() conformance.Timing {
	return conformanceTiming(h.lockDelay)
}

// conformanceTiming is the suite's Timing for Config.LockDelay lockDelay.
func conformanceTiming(lockDelay time.Duration) conformance.Timing {
	s := settings{lockDelay: lockDelay, minTTL: testMinTTL}
	_, delay := s.sessionTimes(conformanceTTL)
	return conformance.Timing{TTL: conformanceTTL, ExpiryLag: conformanceTTL + 500*time.Millisecond, ClaimDelay: delay}
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
