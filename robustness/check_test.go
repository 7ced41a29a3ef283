package robustness

import (
	"encoding/json"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/history"
)

// These tests feed the sink and the recorder made-up histories, through
// the same connection and messages the candidates use, to show that the
// checks TestRobustness relies on fail when they should.

// syntheticWorld is a world with no store and no process: only the sink.
func syntheticWorld(t *testing.T) *world {
	t.Helper()
	w := newWorld(t, &store{name: "synthetic"}, ttl)
	t.Cleanup(func() {
		w.shutdown()
		_ = os.RemoveAll(w.logDir)
	})
	return w
}

func TestSinkRefusesStaleFences(t *testing.T) {
	w := syntheticWorld(t)
	write := func(writer string, fence uint64) Ack {
		return w.write(Message{Kind: KindWrite, Process: writer, Election: electionName, Candidate: writer, Fence: fence})
	}
	if a := write("a", 5); !a.Accepted {
		t.Fatalf("the first write (fence 5) was refused: %+v", a)
	}
	if a := write("b", 7); !a.Accepted || a.Highest != 5 {
		t.Fatalf("a greater fence (7 after 5) was refused: %+v", a)
	}
	if a := write("a", 5); a.Accepted {
		t.Fatalf("a stale fence (5 after 7) was accepted: %+v", a)
	}
	if a := write("c", 7); a.Accepted {
		t.Fatalf("fence 7 from a second writer was accepted: %+v", a)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.sink[2].Stale || w.sink[3].Stale {
		t.Errorf("stale marks: %+v", w.sink)
	}
	problems := w.checkSink()
	if len(problems) != 1 || !strings.Contains(problems[0], "fence 7 written by b and by c") {
		t.Errorf("checkSink = %q, want the one fence written by two candidates", problems)
	}
	// A sink that had accepted the stale write is caught by the check.
	w.sink = append(w.sink, sinkWrite{Writer: "a", Election: electionName, Fence: 5, Accepted: true, At: time.Now()})
	problems = w.checkSink()
	if len(problems) != 2 || !strings.Contains(problems[1], "fence 5 accepted") {
		t.Errorf("checkSink = %q, want the stale write accepted reported", problems)
	}
}

// TestHistoryAcrossProcesses sends two processes' runs over the wire with
// their own send times and checks that the history checker sees the
// overlap, and that an overrun reported by the earlier leader excuses it.
func TestHistoryAcrossProcesses(t *testing.T) {
	for _, overrun := range []bool{false, true} {
		name := map[bool]string{false: "unexcused", true: "overrun-reported"}[overrun]
		t.Run(name, func(t *testing.T) {
			w := syntheticWorld(t)
			t0 := time.Now().Add(-time.Minute)
			at := func(d time.Duration) int64 { return t0.Add(d).UnixNano() }
			msgs := []Message{
				{Kind: KindHello, Process: "p1", At: at(0)},
				{Kind: KindBegin, Process: "p1", Run: 1, Election: electionName, Candidate: "p1", Fence: 1, At: at(0)},
				{Kind: KindBegin, Process: "p2", Run: 1, Election: electionName, Candidate: "p2", Fence: 2, At: at(3 * time.Second)},
			}
			if overrun {
				// p1's deadline was at 2s; it returned at 4s, 2s late.
				ev := election.Event{Kind: election.EventHandlersReturned, State: election.StateReleasing, Time: t0.Add(4 * time.Second),
					Election: electionName, Candidate: "p1", Fence: 1, Overrun: 2 * time.Second}
				msgs = append(msgs, Message{Kind: KindEvent, Process: "p1", At: at(4 * time.Second), Event: NewEventRecord(ev)})
			}
			msgs = append(msgs, Message{Kind: KindReturn, Process: "p1", Run: 1, At: at(4 * time.Second)})
			send(t, w, msgs)
			waitFor(t, "both runs, p1's returned", func() bool {
				runs := w.rec.Runs()
				return len(runs) == 2 && !runs[0].End.IsZero()
			})
			w.mu.Lock()
			violations := w.rec.Check(history.Bounds{})
			w.mu.Unlock()
			runs := w.rec.Runs()
			if !runs[0].Start.Equal(t0) || !runs[0].End.Equal(t0.Add(4*time.Second)) || !runs[1].Start.Equal(t0.Add(3*time.Second)) {
				t.Errorf("runs not at their senders' times: %+v", runs)
			}
			switch {
			case overrun && len(violations) != 0:
				t.Errorf("an overlap after a reported overrun was not excused: %v", violations)
			case !overrun && (len(violations) != 1 || violations[0].Property != "exclusion"):
				t.Errorf("violations = %v, want one exclusion", violations)
			}
		})
	}
}

// send writes msgs on one connection to w's sink.
func send(t *testing.T, w *world, msgs []Message) {
	t.Helper()
	conn, err := net.Dial("tcp", w.sinkAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	enc := json.NewEncoder(conn)
	for _, m := range msgs {
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitBound, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPausedOverlapIsSetApart: an overlap whose earlier handler's process
// was frozen when the later term began is set apart (logged, or failed
// with -robustness.strict); any other stays a violation.
func TestPausedOverlapIsSetApart(t *testing.T) {
	for _, frozen := range []bool{false, true} {
		t.Run(map[bool]string{false: "not-paused", true: "paused"}[frozen], func(t *testing.T) {
			w := syntheticWorld(t)
			t0 := time.Now().Add(-time.Minute)
			at := func(d time.Duration) int64 { return t0.Add(d).UnixNano() }
			send(t, w, []Message{
				{Kind: KindBegin, Process: "p1", Run: 1, Election: electionName, Candidate: "p1", Fence: 1, At: at(0)},
				{Kind: KindBegin, Process: "p2", Run: 1, Election: electionName, Candidate: "p2", Fence: 2, At: at(3 * time.Second)},
				{Kind: KindReturn, Process: "p1", Run: 1, At: at(5 * time.Second)},
			})
			waitFor(t, "both runs, p1's returned", func() bool {
				runs := w.rec.Runs()
				return len(runs) == 2 && !runs[0].End.IsZero()
			})
			w.mu.Lock()
			defer w.mu.Unlock()
			if frozen {
				w.faults = append(w.faults, faultRun{Kind: "process-pause", Process: "p1", From: t0.Add(time.Second), To: t0.Add(5 * time.Second)})
			}
			rest, paused := w.pausedOverlaps(w.rec.Check(history.Bounds{}))
			if frozen && (len(rest) != 0 || len(paused) != 1) || !frozen && (len(rest) != 1 || len(paused) != 0) {
				t.Errorf("frozen %v: violations %v, set apart %v", frozen, rest, paused)
			}
		})
	}
}

// TestNodeFaultTarget: a fault on a store node strikes the node of the
// leader's process, or, drawn as a follower fault, a waiting candidate's:
// labelled "/follower" only when that node is not the leader's too, and
// recorded in the history as a fault of the store, since it cuts off every
// candidate on the node.
func TestNodeFaultTarget(t *testing.T) {
	for _, c := range []struct {
		name       string
		followerOn int // the node of the one waiting candidate
		want       string
	}{
		{"same-node", 0, "member-loss"},
		{"other-node", 1, "member-loss/follower"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := syntheticWorld(t)
			leader := &proc{name: "p1", node: 0, done: make(chan struct{})}
			waiting := &proc{name: "p2", node: c.followerOn, done: make(chan struct{})}
			// No process runs: they count as exited once the test is over,
			// so that the world's shutdown has nothing to signal.
			t.Cleanup(func() { close(leader.done); close(waiting.done) })
			w.mu.Lock()
			w.procs = append(w.procs, leader, waiting)
			w.runs["p1"] = map[uint64]*history.Run{1: w.rec.Begin("p1", election.Term{Election: electionName, ID: "p1", Fence: 7})}
			w.mu.Unlock()
			var struck *proc
			f := fault{name: "member-loss", onTarget: true, storeWide: true, inject: func(_ *world, p *proc, _ float64) { struck = p }}
			w.inject(f, 0, true, rand.New(rand.NewPCG(1, 2)))
			if struck != waiting {
				t.Fatalf("a follower fault struck %v, want p2", struck)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if got := w.faults[0]; got.label() != c.want || got.Fence != 7 || got.Process != "p2" {
				t.Errorf("fault = %+v labelled %q, want %q on p2 with fence 7", got, got.label(), c.want)
			}
			if dump := w.rec.Dump(); !strings.Contains(dump, "fault: store "+c.want+" begins") {
				t.Errorf("the history does not record a store fault %q:\n%s", c.want, dump)
			}
		})
	}
}
