package conformance

import (
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The model's own tests: hand-made histories of a store with a 1s TTL,
// every session opened at 0, checked without a server. Each rejected
// history is paired with a close one that is accepted, so that a model
// rejecting everything fails too.

const modelTTL = time.Second

const ms = time.Millisecond

// at builds one operation of client (and session) c, called at call and
// returning 1ms later.
func at(c int, call time.Duration, kind opKind, token string, out histOut) porcupine.Operation {
	in := histIn{kind: kind, session: c, token: token, call: call.Nanoseconds(), ret: (call + ms).Nanoseconds()}
	return porcupine.Operation{ClientId: c, Input: in, Call: in.call, Output: out, Return: in.ret}
}

func ok(fence uint64) histOut { return histOut{result: resOK, fence: fence} }
func taken(by string, f uint64) histOut {
	return histOut{result: resRefused, holder: by, holderFence: f}
}
func holds(by string, f uint64) histOut { return histOut{result: resOK, holder: by, holderFence: f} }
func inLine(f uint64, by string, hf uint64) histOut {
	return histOut{result: resOK, fence: f, queued: true, holder: by, holderFence: hf}
}

var (
	done    = histOut{result: resOK}
	refused = histOut{result: resRefused}
	expired = histOut{result: resExpired}
)

func TestHistoryModel(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []porcupine.Operation
		want bool
	}{
		{"a claim expires no earlier than a TTL after the session opened", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 500*ms, opClaim, "b", ok(2)),
		}, false},
		{"a claim may expire once the TTL passed", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 1001*ms, opClaim, "b", ok(2)),
		}, true},
		{"a claim expires no earlier than a TTL after its last renewal", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(0, 800*ms, opRenew, "a", done),
			at(1, 1500*ms, opLeader, "", refused),
		}, false},
		{"a renewed claim may expire a TTL after the renewal's call", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(0, 800*ms, opRenew, "a", done),
			at(1, 1800*ms, opLeader, "", refused),
		}, true},
		{"a refused renewal extends the session too", []porcupine.Operation{
			at(0, 0, opRenew, "", done),
			at(0, 800*ms, opRenew, "gone", refused),
			at(0, 900*ms, opClaim, "a", ok(1)),
			at(1, 1500*ms, opClaim, "b", ok(2)),
		}, false},
		{"the store reports a session expired only after its TTL", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(0, 600*ms, opRenew, "a", expired),
		}, false},
		{"the store may report a session expired after its TTL", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(0, 1200*ms, opRenew, "a", expired),
			at(1, 1300*ms, opLeader, "", refused),
		}, true},
		{"a holder that may have expired may also still hold", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 1500*ms, opClaim, "b", taken("a", 1)),
			at(0, 1600*ms, opRenew, "a", done),
			at(1, 2000*ms, opLeader, "", holds("a", 1)),
		}, true},
		{"an expired holder does not come back", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 1500*ms, opLeader, "", refused),
			at(1, 1600*ms, opLeader, "", holds("a", 1)),
		}, false},
		{"two holders at once", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 10*ms, opClaim, "b", ok(2)),
		}, false},
		{"two holders, one after the other's release", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(0, 5*ms, opRelease, "a", done),
			at(1, 10*ms, opClaim, "b", ok(2)),
		}, true},
		{"a fence that does not increase", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(5)),
			at(0, 5*ms, opRelease, "a", done),
			at(1, 10*ms, opClaim, "b", ok(5)),
		}, false},
		{"a renewal by a stale owner", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 5*ms, opRelease, "a", done),
			at(1, 10*ms, opClaim, "b", ok(2)),
			at(0, 20*ms, opRenew, "a", done),
		}, false},
		{"a release with a token the store does not hold", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 5*ms, opRelease, "b", done),
		}, false},
		{"a promotion without the end of the term ahead", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 5*ms, opEnqueue, "b", inLine(2, "a", 1)),
			at(1, 10*ms, opLeader, "", holds("b", 2)),
		}, false},
		{"a promotion on release", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 5*ms, opEnqueue, "b", inLine(2, "a", 1)),
			at(0, 10*ms, opRelease, "a", done),
			at(1, 20*ms, opLeader, "", holds("b", 2)),
		}, true},
		{"a promotion on the holder's expiry", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 5*ms, opEnqueue, "b", inLine(2, "a", 1)),
			at(1, 900*ms, opRenew, "", done),
			at(1, 1100*ms, opLeader, "", holds("b", 2)),
		}, true},
		{"a vacancy while a claim waits in line", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 5*ms, opEnqueue, "b", inLine(2, "a", 1)),
			at(0, 10*ms, opRelease, "a", done),
			at(1, 20*ms, opLeader, "", refused),
		}, false},
		{"a promotion of a claim taken out of line", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 5*ms, opEnqueue, "b", inLine(2, "a", 1)),
			at(1, 10*ms, opRelease, "b", done),
			at(0, 20*ms, opRelease, "a", done),
			at(1, 30*ms, opLeader, "", holds("b", 2)),
		}, false},
		{"a vacancy once the line is empty", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 5*ms, opEnqueue, "b", inLine(2, "a", 1)),
			at(1, 10*ms, opRelease, "b", done),
			at(0, 20*ms, opRelease, "a", done),
			at(1, 30*ms, opLeader, "", refused),
		}, true},
		{"an out-of-order line", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 5*ms, opEnqueue, "b", inLine(2, "a", 1)),
			at(2, 10*ms, opEnqueue, "c", inLine(3, "a", 1)),
			at(0, 20*ms, opRelease, "a", done),
			at(1, 30*ms, opLeader, "", holds("c", 3)),
		}, false},
		{"a claim in line expires with its session", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 5*ms, opEnqueue, "b", inLine(2, "a", 1)),
			at(2, 10*ms, opEnqueue, "c", inLine(3, "a", 1)),
			at(0, 900*ms, opRenew, "a", done),
			at(2, 900*ms, opRenew, "", done),
			at(0, 1200*ms, opRelease, "a", done),
			at(2, 1300*ms, opLeader, "", holds("c", 3)),
		}, true},
		{"a claim in line expires no earlier than its session", []porcupine.Operation{
			at(0, 0, opClaim, "a", ok(1)),
			at(1, 5*ms, opEnqueue, "b", inLine(2, "a", 1)),
			at(2, 10*ms, opEnqueue, "c", inLine(3, "a", 1)),
			at(0, 500*ms, opRelease, "a", done),
			at(2, 600*ms, opLeader, "", holds("c", 3)),
		}, false},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			res := porcupine.CheckOperationsTimeout(historyModel(modelTTL), tc.ops, 10*time.Second)
			if got := res == porcupine.Ok; got != tc.want {
				t.Errorf("linearizable = %v (%v), want %v for:\n%s", got, res, tc.want, describeHistory(tc.ops))
			}
		})
	}
}

func TestCheckWatch(t *testing.T) {
	granted := map[uint64]grant{
		10: {token: "a", call: (100 * ms).Nanoseconds()},
		20: {token: "b", call: (200 * ms).Nanoseconds()},
		30: {token: "c", call: (300 * ms).Nanoseconds()},
	}
	ev := func(at time.Duration, holder string, fence uint64) watchSeen {
		return watchSeen{at: at.Nanoseconds(), holder: holder, fence: fence}
	}
	vacant := func(at time.Duration) watchSeen { return watchSeen{at: at.Nanoseconds()} }
	for _, tc := range []struct {
		name    string
		stream  []watchSeen
		problem string // "" when the stream is right
	}{
		{"every term in order", []watchSeen{vacant(0), ev(110*ms, "a", 10), vacant(150 * ms), ev(210*ms, "b", 20), ev(310*ms, "c", 30)}, ""},
		{"coalesced and repeated", []watchSeen{ev(110*ms, "a", 10), ev(120*ms, "a", 10), ev(310*ms, "c", 30)}, ""},
		{"a fence no claim was granted", []watchSeen{ev(110*ms, "a", 11)}, "no claim of the run was granted"},
		{"another claim's fence", []watchSeen{ev(210*ms, "a", 20)}, "the fence of b's claim"},
		{"a holder before its claim", []watchSeen{ev(150*ms, "b", 20)}, "before its claim was made"},
		{"fences going back", []watchSeen{ev(210*ms, "b", 20), ev(220*ms, "a", 10)}, "fences went back"},
		{"a term shown again after a vacancy", []watchSeen{ev(110*ms, "a", 10), vacant(120 * ms), ev(130*ms, "a", 10)}, "shown again after a vacancy"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			problems := checkWatch(granted, tc.stream)
			switch {
			case tc.problem == "" && len(problems) > 0:
				t.Errorf("checkWatch rejects a right stream: %q", problems)
			case tc.problem != "" && (len(problems) != 1 || !strings.Contains(problems[0], tc.problem)):
				t.Errorf("checkWatch = %q, want one problem saying %q", problems, tc.problem)
			}
		})
	}
}

func TestGrantsOf(t *testing.T) {
	history := []porcupine.Operation{
		at(0, 0, opClaim, "a", ok(1)),
		at(1, 5*ms, opClaim, "b", taken("a", 1)),
		at(1, 10*ms, opEnqueue, "c", inLine(3, "a", 1)),
		at(2, 20*ms, opEnqueue, "d", expired),
	}
	got := grantsOf(history)
	want := map[uint64]grant{1: {token: "a", call: 0}, 3: {token: "c", call: (10 * ms).Nanoseconds()}}
	if len(got) != len(want) || got[1] != want[1] || got[3] != want[3] {
		t.Errorf("grantsOf = %v, want %v", got, want)
	}
}
