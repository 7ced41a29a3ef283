// Package conformance is the safety suite every election backend runs, ours
// and third parties': one call, [Run], from the backend's own tests against
// a real store.
//
// A failure names the property broken: two leaders at once, a fence that
// did not increase, a handoff found by expiry instead of a push, a leader
// that kept acting after its link was cut. Subtests have stable names
// (Run(t, h) then `go test -run 'TestConformance/Partition'`) and their own
// timeouts, scaled by the harness's TTL. A fault the harness cannot inject
// is skipped with the reason; the project's own backends skip nothing.
package conformance

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/electionkit/election/internal/history"
)

type spec struct {
	name string
	ttls int // timeout in TTLs, on top of a fixed allowance
	fn   func(e *env)
}

var suite = []spec{
	{"OneLeaderAmongFive", 10, testOneLeader},
	{"ForcedHandoffs", 200, testHandoffs},
	{"ManyElections", 20, testManyElections},
	{"KeepsLeadership", 15, testKeepsLeadership},
	{"WrongToken", 10, testWrongToken},
	{"CrashTakeover", 15, testCrash},
	{"GracefulHandoff", 15, testGracefulHandoff},
	{"Partition", 20, testPartition},
	{"StorePause", 20, testStorePause},
	{"StoreRestart", 20, testStoreRestart},
	{"Observer", 20, testObserver},
	{"StopIdempotentNoLeak", 10, testStopNoLeak},
	{"StartWhileStoreDown", 20, testStartWhileDown},
	{"TryLease", 15, testTryLease},
	{"InvalidArguments", 5, testInvalid},
	{"LinearizableHistory", 30, testLinearizable},
	{"QueuedHandoff", 10, testQueuedHandoff},
	{"LingeringHandlerStop", 15, testLingeringStop},
	{"LingeringHandlerLoss", 20, testLingeringLoss},
	{"WatchContract", 30, testNotify},
}

// Run runs the whole suite against the backend that newHarness gives
// access to, one fresh Harness per subtest. Subtests that need a
// capability the harness does not declare (see [Capabilities]) are
// skipped with the reason; a backend that disagrees with its harness's
// declaration fails them.
func Run(t *testing.T, newHarness NewHarness) {
	for _, s := range suite {
		runSpec(t, newHarness, s)
	}
}

// runSpec runs one subtest with a fresh Harness.
func runSpec(t *testing.T, newHarness NewHarness, s spec) {
	t.Run(s.name, func(t *testing.T) {
		ctx0, cancel0 := context.WithTimeout(context.Background(), time.Minute)
		h, err := newHarness(ctx0, t)
		cancel0()
		if err != nil {
			t.Fatalf("harness: %v", err)
		}
		timing := h.Timing()
		if timing.TTL <= 0 {
			t.Fatalf("harness Timing().TTL is %v", timing.TTL)
		}
		timeout := time.Minute + time.Duration(s.ttls)*timing.takeover()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		t.Cleanup(func() {
			cancel()
			if err := h.Close(); err != nil {
				t.Errorf("harness Close: %v", err)
			}
		})
		s.fn(&env{t: t, ctx: ctx, h: h, timing: timing, caps: h.Capabilities(), hist: history.New(time.Now)})
	})
}

// fault skips the test when err says the harness cannot inject
// the fault, and fails it on any other error.
func (e *env) fault(what string, err error) {
	e.t.Helper()
	if errors.Is(err, ErrUnsupported) {
		e.t.Skipf("harness cannot %s: %v", what, err)
	}
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}
