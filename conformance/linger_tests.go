package conformance

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/history"
)

// lingerer returns a handler that records its run and, once its context
// ends, goes on writing to the fenced sink for linger, ignoring the
// context: a batch finishing its last steps, as real programs do. returned,
// if not nil, is closed when its first run returns.
func (e *env) lingerer(n *node, linger time.Duration, returned chan<- struct{}) election.Handler {
	var once sync.Once
	return func(ctx context.Context, t election.Term) {
		run := e.hist.Begin(n.id, t)
		defer once.Do(func() {
			if returned != nil {
				close(returned)
			}
		})
		defer run.Return()
		tick := time.NewTicker(e.timing.TTL / 20)
		defer tick.Stop()
		for ctx.Err() == nil {
			e.hist.Write(run)
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
		end := time.After(linger)
		for {
			select {
			case <-tick.C:
				e.hist.Write(run)
			case <-end:
				return
			}
		}
	}
}

// testLingeringStop: the leader's handler keeps writing for 1.5×TTL after
// its context ends, and its process shuts down as the README says: Stop
// with a short context, then Close with a short context. Both return
// ErrHandlersRunning; the claim is kept (renewed past its TTL) until the
// handler returns, so the next leader starts only after it, with no
// overrun; then the claim is released and Elector.Done closes.
func testLingeringStop(e *env) {
	a := e.newNode("a")
	returned := make(chan struct{})
	linger := e.timing.TTL * 3 / 2
	ca, err := a.el.NewCandidate(election.CandidateConfig{Name: "lingering", ID: "a",
		Handlers: []election.Handler{e.lingerer(a, linger, returned)}})
	if err != nil {
		e.t.Fatalf("NewCandidate: %v", err)
	}
	if err := ca.Start(e.ctx); err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	e.waitFor(e.settle(), "a to lead", ca.IsLeader)
	b := e.candidate(e.newNode("b"), "lingering", "b", nil)
	e.waitFor(e.settle(), "b to see a lead", func() bool { l, ok := b.Leader(); return ok && l.ID == "a" })

	short := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(e.ctx, 200*time.Millisecond)
	}
	ctx, cancel := short()
	stopped := time.Now()
	err = ca.Stop(ctx)
	cancel()
	if !errors.Is(err, election.ErrHandlersRunning) || !errors.Is(err, context.DeadlineExceeded) {
		e.t.Fatalf("Stop with a handler running = %v, want ErrHandlersRunning and DeadlineExceeded", err)
	}
	ctx, cancel = short()
	err = a.el.Close(ctx)
	cancel()
	if !errors.Is(err, election.ErrHandlersRunning) {
		e.t.Fatalf("Close with a handler running = %v, want ErrHandlersRunning", err)
	}
	select {
	case <-returned:
		e.t.Fatalf("the handler returned at once; it was to linger %v", linger)
	default:
	}
	if b.IsLeader() {
		e.t.Fatalf("b leads while a's handler still runs")
	}
	select {
	case <-returned:
	case <-time.After(linger + e.settle()):
		e.t.Fatalf("a's handler did not return")
	}
	if took := time.Since(stopped); took < e.timing.TTL {
		e.t.Fatalf("the handler returned %v after Stop, within one TTL (%v): the test did not outlast the claim's TTL", took, e.timing.TTL)
	}
	e.waitFor(e.settle(), "b to lead once a's handler returned", b.IsLeader)
	select {
	case <-a.el.Done():
	case <-time.After(e.settle()):
		e.t.Fatalf("Elector.Done not closed after the last handler returned")
	}
	select {
	case <-ca.Done():
	default:
		e.t.Fatalf("Candidate.Done not closed after Elector.Done")
	}
	if l, err := e.newNode("observer").b.Leader(e.ctx, "lingering"); err != nil || l.ID != "b" {
		e.t.Fatalf("after a's release, Leader = %+v, %v; want b", l, err)
	}
	if a.sawEvent(election.EventHandlerOverrun, nil) {
		e.t.Errorf("an overrun was reported although the claim was kept through the handler's run")
	}
	e.hist.Report(e.t, history.Bounds{})
	for _, w := range e.hist.Writes() {
		if !w.Accepted {
			e.t.Errorf("a write with fence %d by %s was refused by the fenced sink: two writers overlapped", w.Fence, w.Writer)
		}
	}
}

// testLingeringLoss: the leader is cut off from the store while its
// handler ignores its context for longer than the store keeps the claim.
// Its context ends at its deadline; past that the store expires the claim
// and elects b, so the two overlap: the suite requires that the overrun was
// reported (EventHandlerOverrun) and that b started only after a's
// deadline, and that only fencing then refuses a's writes.
func testLingeringLoss(e *env) {
	a := e.newNode("a")
	returned := make(chan struct{})
	linger := e.timing.TTL + e.timing.takeover() + time.Second
	ca, err := a.el.NewCandidate(election.CandidateConfig{Name: "overrun", ID: "a",
		Handlers: []election.Handler{e.lingerer(a, linger, returned)}})
	if err != nil {
		e.t.Fatalf("NewCandidate: %v", err)
	}
	if err := ca.Start(e.ctx); err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	e.waitFor(e.settle(), "a to lead", ca.IsLeader)
	nb := e.newNode("b")
	b, err := nb.el.NewCandidate(election.CandidateConfig{Name: "overrun", ID: "b",
		Handlers: []election.Handler{e.lingerer(nb, 0, nil)}})
	if err != nil {
		e.t.Fatalf("NewCandidate: %v", err)
	}
	if err := b.Start(e.ctx); err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	e.fault("cut a's link", a.link.Cut(e.ctx))
	e.waitFor(e.settle(), "b to lead after a's claim expired", b.IsLeader)
	e.waitFor(e.settle(), "a to report the overrun", func() bool { return a.sawEvent(election.EventHandlerOverrun, nil) })
	select {
	case <-returned:
	case <-time.After(linger + e.settle()):
		e.t.Fatalf("a's handler did not return")
	}
	e.fault("heal a's link", a.link.Heal(e.ctx))
	e.waitFor(e.settle(), "a to report the late return", func() bool {
		return a.sawEvent(election.EventHandlersReturned, func(ev election.Event) bool { return ev.Overrun > 0 })
	})
	e.hist.Report(e.t, history.Bounds{})
	refused := 0
	for _, w := range e.hist.Writes() {
		if !w.Accepted {
			refused++
			if w.Writer != "a" {
				e.t.Errorf("the fenced sink refused a write of %s (fence %d): only the overrunning a should be", w.Writer, w.Fence)
			}
		}
	}
	if refused == 0 {
		e.t.Errorf("no write of a's was refused by the fenced sink, though a wrote on after b was elected")
	}
}
