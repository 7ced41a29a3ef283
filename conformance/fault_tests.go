package conformance

import (
	"context"
	"errors"
	"time"

	"go.uber.org/goleak"

	"github.com/electionkit/election"
)

// testCrash: the leader's process dies without releasing. Another candidate
// is elected no earlier than TTL after the dead leader's last renewal, and
// within TTL + the store's expiry lag + its claim delay + a margin.
func testCrash(e *env) {
	a := e.newNode("a")
	ca := e.candidate(a, "crash", "a", nil)
	e.waitFor(e.settle(), "a to lead", ca.IsLeader)
	b := e.candidate(e.newNode("b"), "crash", "b", nil)
	e.waitFor(e.settle(), "a renewal covering a's claim", func() bool { return !a.lastRenewal().IsZero() })

	// A crash: no more traffic from a, nothing released.
	e.fault("cut a's link", a.link.Cut(e.ctx))
	cut := time.Now()
	lastRenew := a.lastRenewal()
	e.waitFor(e.settle(), "b to take over", b.IsLeader)
	elected, _ := b.Term()
	if elected.Since.Before(lastRenew.Add(e.timing.TTL)) {
		e.t.Fatalf("b elected %v after a's last renewal, before the TTL %v: a's claim did not hold", elected.Since.Sub(lastRenew), e.timing.TTL)
	}
	bound := e.timing.takeover() + 2*time.Second
	if took := elected.Since.Sub(cut); took > bound {
		e.t.Fatalf("b elected %v after the crash, over TTL + expiry lag + claim delay + 2s = %v", took, bound)
	}
	e.checkIntervals()
}

// testPartition: the leader's link is cut; its context is cancelled before
// any other candidate is elected; after healing it does not lead again
// unless elected with a new fence.
func testPartition(e *env) {
	a := e.newNode("a")
	ca := e.candidate(a, "partition", "a", nil)
	e.waitFor(e.settle(), "a to lead", ca.IsLeader)
	first, _ := ca.Term()
	b := e.candidate(e.newNode("b"), "partition", "b", nil)
	c := e.candidate(e.newNode("c"), "partition", "c", nil)

	e.fault("cut a's link", a.link.Cut(e.ctx))
	e.waitFor(e.settle(), "a to step down", func() bool { return !ca.IsLeader() })
	e.waitFor(e.settle(), "b or c to lead", func() bool { return b.IsLeader() || c.IsLeader() })
	e.fault("heal a's link", a.link.Heal(e.ctx))
	time.Sleep(e.timing.TTL)
	if t, ok := ca.Term(); ok && t.Fence <= first.Fence {
		e.t.Fatalf("after healing, a leads with its old fence %d", t.Fence)
	}
	if !a.sawEvent(election.EventLost, nil) {
		e.t.Errorf("a reported no Lost event for the partition")
	}
	e.checkIntervals()
}

// testStorePause: the store is frozen for longer than the TTL, then
// resumed: never two leaders, and a leader again afterwards.
func testStorePause(e *env) {
	ca := e.candidate(e.newNode("a"), "pause", "a", nil)
	e.waitFor(e.settle(), "a to lead", ca.IsLeader)
	cb := e.candidate(e.newNode("b"), "pause", "b", nil)
	st := e.h.Store()
	e.fault("pause the store", st.Pause(e.ctx))
	time.Sleep(2*e.timing.TTL + e.timing.ExpiryLag)
	if ca.IsLeader() {
		e.t.Errorf("a still leads %v into a store pause (TTL %v)", 2*e.timing.TTL+e.timing.ExpiryLag, e.timing.TTL)
	}
	e.fault("resume the store", st.Resume(e.ctx))
	e.waitFor(e.settle(), "a leader after resume", func() bool { return ca.IsLeader() || cb.IsLeader() })
	e.checkIntervals()
}

// testStoreRestart: the store is killed and started again: campaigning
// continues, a leader exists afterwards and fences still increase.
func testStoreRestart(e *env) {
	ca := e.candidate(e.newNode("a"), "restart", "a", nil)
	e.waitFor(e.settle(), "a to lead", ca.IsLeader)
	cb := e.candidate(e.newNode("b"), "restart", "b", nil)
	before, _ := ca.Term()
	st := e.h.Store()
	e.fault("stop the store", st.Stop(e.ctx))
	time.Sleep(e.timing.TTL / 2)
	e.fault("start the store", st.Start(e.ctx))
	e.waitFor(e.settle()+30*time.Second, "a leader after restart", func() bool { return ca.IsLeader() || cb.IsLeader() })
	// Force a new term to show fences still increase across the restart.
	for _, c := range []*election.Candidate{ca, cb} {
		if t, ok := c.Term(); ok && t.Fence == before.Fence {
			// Just after a restart the client may still be reconnecting:
			// a release that times out is retried in the background (and
			// the claim expires anyway), as Resign's error says.
			if err := c.Resign(e.ctx); err != nil && !errors.Is(err, election.ErrUnavailable) {
				e.t.Fatalf("Resign: %v", err)
			}
			e.waitFor(e.settle()+e.timing.TTL+e.timing.ExpiryLag, "a new term", func() bool { return e.termCount("restart") >= 2 })
		}
	}
	e.waitFor(e.settle(), "a leader", func() bool { return ca.IsLeader() || cb.IsLeader() })
	e.waitFor(e.settle(), "the new term recorded", func() bool { return e.termCount("restart") >= 2 })
	if n := e.checkIntervals(); n < 2 {
		e.t.Fatalf("saw %d terms across a restart, want at least 2", n)
	}
}

// testStartWhileDown: Start with the store down reports ErrUnavailable as
// an event, retries with backoff, and is elected once the store is up.
func testStartWhileDown(e *env) {
	st := e.h.Store()
	n := e.newNode("a")
	e.fault("stop the store", st.Stop(e.ctx))
	c := e.newCandidate(n, "down", "a", nil)
	ctx, cancel := context.WithTimeout(e.ctx, e.settle())
	err := c.Start(ctx)
	cancel()
	if err != nil {
		e.t.Fatalf("Start with the store down: %v (want nil and an event)", err)
	}
	e.waitFor(e.settle(), "a claim-failed event wrapping ErrUnavailable", func() bool {
		return n.sawEvent(election.EventClaimFailed, func(ev election.Event) bool { return errors.Is(ev.Err, election.ErrUnavailable) })
	})
	if c.IsLeader() {
		e.t.Fatalf("leads while the store is down")
	}
	e.fault("start the store", st.Start(e.ctx))
	e.waitFor(e.settle()+30*time.Second, "election once the store is up", c.IsLeader)
}

// testStopNoLeak: Stop is idempotent and leaves no goroutine once the
// elector and backend are closed.
func testStopNoLeak(e *env) {
	before := goleak.IgnoreCurrent()
	b, link, err := e.h.NewBackend(e.ctx)
	if err != nil {
		e.t.Fatalf("NewBackend: %v", err)
	}
	el, err := election.New(b, election.Config{TTL: e.timing.TTL})
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	var cs []*election.Candidate
	for _, id := range ids("s", 3) {
		c, err := el.NewCandidate(election.CandidateConfig{Name: "noleak", ID: id, Handlers: []election.Handler{e.recorder()}})
		if err != nil {
			e.t.Fatalf("NewCandidate: %v", err)
		}
		if err := c.Start(e.ctx); err != nil {
			e.t.Fatalf("Start: %v", err)
		}
		cs = append(cs, c)
	}
	obsCtx, stopObs := context.WithCancel(e.ctx)
	changes, err := el.Observe(obsCtx, "noleak")
	if err != nil {
		e.t.Fatalf("Observe: %v", err)
	}
	e.waitFor(e.settle(), "a leader", func() bool { return leaderOf(cs) != nil })
	stopObs()
	for range changes {
	}
	for _, c := range cs {
		e.stop(c)
		e.stop(c) // idempotent
		if err := c.Start(e.ctx); !errors.Is(err, election.ErrStopped) {
			e.t.Errorf("Start after Stop = %v, want ErrStopped", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.settle())
	defer cancel()
	if err := el.Close(ctx); err != nil {
		e.t.Errorf("Close: %v", err)
	}
	_ = link
	if err := e.h.CloseBackend(b); err != nil {
		e.t.Errorf("CloseBackend: %v", err)
	}
	if err := goleak.Find(before); err != nil {
		e.t.Fatalf("goroutines left after Stop and Close: %v", err)
	}
	e.checkIntervals()
}
