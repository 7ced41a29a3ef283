package election

import (
	"context"
	"sync"
	"time"
)

// Term describes one period of leadership of a candidate, as handed to its
// handlers.
type Term struct {
	// Election is the election name.
	Election string
	// ID is the candidate's ID.
	ID string
	// Fence is the term's fencing token: strictly greater than that of every
	// earlier term of the election. Attach it to writes so that the systems
	// written to can reject a deposed leader.
	Fence uint64
	// Since is when the term began, on the elector's clock.
	Since time.Time
	// TokenPrefix is the first characters of the owner token, for logs.
	TokenPrefix string

	live *term
}

// State reports the term's state now: [StateLeading], [StateUncertain]
// (renewals are failing; the term goes on if one succeeds before its
// deadline), or [StateSteppingDown] once it has ended (its handlers'
// context is cancelled then). A zero Term reports [StateIdle].
func (t Term) State() State {
	if t.live == nil {
		return StateIdle
	}
	t.live.mu.Lock()
	defer t.live.mu.Unlock()
	return t.live.status
}

// Changed returns a channel that is closed at the term's next change of
// State. Call it again after it fires for the change after that:
//
//	for t.State() != election.StateSteppingDown {
//		ch := t.Changed()
//		if t.State() == election.StateUncertain { pauseWrites() } else { resumeWrites() }
//		<-ch
//	}
func (t Term) Changed() <-chan struct{} {
	if t.live == nil {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	t.live.mu.Lock()
	defer t.live.mu.Unlock()
	return t.live.changed.next()
}

// Deadline returns the local time by which the term ends unless a renewal
// succeeds first: the send time of the last successful renewal + TTL −
// DriftMargin.
func (t Term) Deadline() time.Time {
	if t.live == nil {
		return time.Time{}
	}
	t.live.mu.Lock()
	defer t.live.mu.Unlock()
	return t.live.deadlineLocked()
}

// Handler is leader-only work. It is called in its own goroutine each time
// its candidate is elected, with a context that is cancelled the moment
// leadership ends for any reason: loss of renewal (at the latest at the
// local deadline), a newer term seen, Resign, Stop or Close.
//
// The claim outlives the handlers: the candidate keeps the claim (and keeps
// renewing it while the store answers) until every handler of the term has
// returned, and only then releases it, so a handler that finishes its last
// step after its context ended still runs alone. A handler that runs past
// the term's deadline (when the store may expire the claim and elect
// another) is reported: [EventHandlerOverrun]. Return promptly once ctx is
// done.
type Handler func(ctx context.Context, t Term)

// term is the live state of one claim: in line, held, or stepping down.
// The driver owns its place in the lifecycle; the term owns its context,
// its handlers and its deadline, so that the deadline cancels the handlers
// even if the driver is busy.
type term struct {
	cand  *Candidate
	claim Claim
	sess  *session
	info  Term
	// ctx is the handlers' context, made by context on first use (a
	// term no handler or RunIfLeader uses costs none) and cancelled with
	// the cause end gave.
	ctx    context.Context
	cancel context.CancelCauseFunc
	cause  error // guarded by mu: end's cause

	mu      sync.Mutex
	status  State
	changed changes
	started bool
	ended   bool // ctx cancelled: no new work
	gone    bool // the store does not hold the claim: the deadline no longer moves
	// bound says the deadline is the session's (see session); otherwise
	// it is deadline, watched by timer.
	bound    bool
	deadline time.Time
	timer    Timer
	overrun  bool      // the deadline passed with handlers running
	lastDone time.Time // when a handler or RunIfLeader last returned
	work     int       // running handlers and RunIfLeader calls
	workers  map[uint64]int
	doneSent bool
	posted   renewOutcome // the last renewal outcome posted to the driver
}

func newTerm(c *Candidate, s *session, cl Claim, since, deadline time.Time) *term {
	t := &term{
		cand:  c,
		claim: cl,
		sess:  s,
		info: Term{
			Election:    cl.Name,
			ID:          c.cfg.ID,
			Fence:       cl.Fence,
			Since:       since,
			TokenPrefix: TokenPrefix(cl.Token),
		},
		deadline: deadline,
		status:   StateClaiming,
	}
	t.info.live = t
	return t
}

func (t *term) leader() *Leader {
	c := t.cand
	return &Leader{Election: t.claim.Name, ID: c.cfg.ID, Metadata: c.cfg.Metadata, Fence: t.claim.Fence}
}

// setStatus publishes the term's state to its handlers.
func (t *term) setStatus(s State) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status == s || t.status == StateSteppingDown {
		return
	}
	t.status = s
	t.changed.fire()
}

// start begins the term: arms the deadline and starts handlers, unless the
// deadline has already passed (a pause between the claim and now), in which
// case the term ends at once and no handler ever starts.
func (t *term) start(handlers []Handler, since, deadline time.Time, adopted bool) {
	clock := t.cand.el.clock
	t.mu.Lock()
	if adopted {
		t.info.Since, t.deadline = since, deadline
	}
	t.started = true
	if !clock.Now().Before(t.deadlineLocked()) {
		t.mu.Unlock()
		t.expire()
		return
	}
	t.armLocked()
	t.mu.Unlock()
	t.setStatus(StateLeading)
	for _, h := range handlers {
		t.runHandler(h)
	}
}

// armLocked schedules the deadline check (and, once the deadline has
// passed, the overrun check). The timer cancels the handlers directly, not
// through the driver, so a busy driver can never delay the step-down.
func (t *term) armLocked() {
	if t.timer != nil {
		t.timer.Stop()
	}
	clock := t.cand.el.clock
	at := t.deadline
	if t.overrun {
		at = at.Add(t.cand.el.overrunGrace())
	}
	t.timer = clock.AfterFunc(at.Sub(clock.Now()), t.onTimer)
}

// deadlineLocked returns the term's deadline now.
func (t *term) deadlineLocked() time.Time {
	if t.bound {
		return t.sess.deadline()
	}
	return t.deadline
}

// bind makes the term's deadline the session's, if it is held normally:
// started, before its deadline, not lost, not finished. The session calls
// it, holding its own lock, after a renewal that carried the claim.
func (t *term) bind() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bound || !t.started || t.gone || t.overrun || t.doneSent || t.timer == nil {
		return false
	}
	t.timer.Stop()
	t.timer = nil
	t.bound = true
	return true
}

// reachBound handles the deadline d of a bound term, which the session's
// timer found passed at now: the deadline becomes the term's own, and the
// term reaches it as if its own timer had fired.
func (t *term) reachBound(d, now time.Time) {
	t.mu.Lock()
	if !t.bound {
		t.mu.Unlock()
		return // loosened meanwhile: its own timer watches it
	}
	t.bound = false
	t.deadline = d
	if t.doneSent {
		t.mu.Unlock()
		return
	}
	t.checkLocked(now)
}

func (t *term) onTimer() {
	now := t.cand.el.clock.Now()
	t.mu.Lock()
	if t.timer == nil || t.bound {
		t.mu.Unlock()
		return // finished, or the session's timer watches the deadline
	}
	t.checkLocked(now)
}

// checkLocked compares the term's own deadline with now, t.mu held, and
// releases t.mu: it re-arms the timer if the deadline has moved, ends the
// term at the deadline, and reports handlers still running after the
// grace.
func (t *term) checkLocked(now time.Time) {
	if now.Before(t.deadline) {
		// Extended since the timer was set.
		t.overrun = false
		t.armLocked()
		t.mu.Unlock()
		return
	}
	if !t.overrun {
		// The deadline: end the term (if it has not ended), and check
		// again after the grace for handlers still running.
		t.overrun = true
		running := t.work > 0
		if running {
			t.armLocked()
		} else {
			t.timer = nil
		}
		t.mu.Unlock()
		t.expire()
		return
	}
	past := now.Sub(t.deadline)
	running := t.work > 0
	t.timer = nil
	t.mu.Unlock()
	if running {
		t.cand.post(input{kind: inOverrun, term: t, overrun: past})
	}
}

// expire ends the term at its deadline. The driver hears of the deadline
// before it can hear that the handlers returned.
func (t *term) expire() {
	t.cand.post(input{kind: inDeadline, term: t})
	t.end(errDeadline)
}

// extend moves the deadline to until if that is later, after a renewal
// that covered the claim succeeded. It keeps moving after the term ended
// (the claim is still held and protects lingering handlers), until the
// store is known not to hold the claim.
func (t *term) extend(until time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bound || t.gone || !until.After(t.deadline) {
		return
	}
	t.deadline = until
	if t.overrun && t.timer != nil {
		// Held again: the deadline check resumes.
		t.overrun = false
		t.armLocked()
	}
	// Otherwise the armed timer fires at the old deadline and re-arms.
}

// invalidate marks the claim gone from the store: the term's deadline is
// now, if it was later, so that handlers still running are reported as
// overrunning. The session has loosened t first.
func (t *term) invalidate() {
	now := t.cand.el.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bound {
		// Not loosened (a bug): keep the session's deadline as the
		// term's own rather than a stale one.
		t.deadline, t.bound = t.sess.deadline(), false
	}
	t.gone = true
	if t.deadline.After(now) {
		t.deadline = now
	}
	if t.started && t.work > 0 && t.timer != nil {
		t.armLocked()
	}
}

// end cancels the term's context with cause; no work starts after it. It
// reports whether this call ended it.
func (t *term) end(cause error) bool {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return false
	}
	t.ended = true
	t.cause = cause
	if t.cancel != nil {
		t.cancel(cause)
	}
	idle := t.work == 0
	t.mu.Unlock()
	t.setStatus(StateSteppingDown)
	if idle {
		t.postDone()
	}
	return true
}

// postDone tells the driver, once, that the term has ended and its last
// handler returned.
func (t *term) postDone() {
	t.mu.Lock()
	if t.doneSent {
		t.mu.Unlock()
		return
	}
	t.doneSent = true
	// Work that returned after the deadline overran it, whether or not
	// a timer has noticed yet: a process paused past its deadline
	// (SIGSTOP, a VM stop) can hear of a newer term before its deadline
	// timer runs.
	var over time.Duration
	if d := t.deadlineLocked(); t.lastDone.After(d) {
		over = t.lastDone.Sub(d)
	}
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	t.mu.Unlock()
	t.cand.post(input{kind: inHandlersDone, term: t, overrun: over})
}

// valid reports whether the term leads now: started, not ended and before
// its deadline.
func (t *term) valid() bool {
	now := t.cand.el.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.started && !t.ended && now.Before(t.deadlineLocked())
}

// startWork registers one piece of leader-only work run by goroutine g; it
// reports false once the term ended or its deadline passed.
func (t *term) startWork(g uint64) bool {
	now := t.cand.el.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started || t.ended || !now.Before(t.deadlineLocked()) {
		return false
	}
	t.work++
	if t.workers == nil {
		t.workers = map[uint64]int{}
	}
	t.workers[g]++
	return true
}

// doneWork ends one piece of work of goroutine g.
func (t *term) doneWork(g uint64) {
	now := t.cand.el.clock.Now()
	t.mu.Lock()
	t.lastDone = now
	t.work--
	if t.workers[g]--; t.workers[g] == 0 {
		delete(t.workers, g)
	}
	last := t.work == 0 && t.ended
	t.mu.Unlock()
	if last {
		t.postDone()
	}
}

// context returns the handlers' context, made on first use; it is
// already cancelled if the term has ended.
func (t *term) context() context.Context {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx == nil {
		t.ctx, t.cancel = context.WithCancelCause(context.Background())
		if t.ended {
			t.cancel(t.cause)
		}
	}
	return t.ctx
}

// runs reports whether goroutine g runs work of the term.
func (t *term) runs(g uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.workers[g] > 0
}

// running reports whether any work of the term runs.
func (t *term) running() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.work > 0
}

func (t *term) runHandler(h Handler) {
	// Registered before the goroutine exists, so that the term cannot be
	// seen idle in between; the goroutine then names itself.
	if !t.startWork(0) {
		return
	}
	t.cand.handlers.Add(1)
	go func() {
		defer t.cand.handlers.Done()
		g := goid()
		t.mu.Lock()
		t.workers[0]--
		if t.workers[0] == 0 {
			delete(t.workers, 0)
		}
		t.workers[g]++
		t.mu.Unlock()
		defer t.doneWork(g)
		h(t.context(), t.info)
	}()
}
