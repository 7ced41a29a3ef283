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
	// Since is when the claim succeeded, on the elector's clock.
	Since time.Time
	// TokenPrefix is the first characters of the owner token, for logs.
	TokenPrefix string
}

// Handler is leader-only work. It is called in its own goroutine each time
// its candidate is elected, with a context that is cancelled the moment
// leadership ends for any reason: loss of renewal (at the latest at the
// local deadline), a newer term seen, Resign or Stop. A Handler must return
// promptly once ctx is done: Resign and Stop wait for it before releasing
// the election, so that the next leader never overlaps with it.
type Handler func(ctx context.Context, t Term)

// term is the live state of one leadership term.
type term struct {
	cand    *Candidate
	claim   Claim
	sess    *session
	info    Term
	ctx     context.Context
	cancel  context.CancelCauseFunc
	work    sync.WaitGroup // handlers and RunIfLeader calls
	drift   time.Duration
	onEnded func()

	mu       sync.Mutex
	deadline time.Time
	timer    Timer
	ended    bool
	reason   LossReason
	err      error
	seenOwn  bool // the watch has shown this term as the holder
}

func newTerm(c *Candidate, s *session, cl Claim, since time.Time, deadline time.Time) *term {
	ctx, cancel := context.WithCancelCause(context.Background())
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
		ctx:      ctx,
		cancel:   cancel,
		deadline: deadline,
		onEnded:  c.wakeUp,
	}
	t.mu.Lock()
	t.armLocked()
	t.mu.Unlock()
	return t
}

// armLocked schedules the deadline check. The timer calls the cancel
// directly, not through the candidate's loop, so a busy loop can never delay
// the step-down.
func (t *term) armLocked() {
	if t.timer != nil {
		t.timer.Stop()
	}
	clock := t.cand.el.clock
	t.timer = clock.AfterFunc(t.deadline.Sub(clock.Now()), t.onDeadline)
}

func (t *term) onDeadline() {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	if now := t.cand.el.clock.Now(); now.Before(t.deadline) {
		// Extended since the timer was set.
		t.armLocked()
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.end(LossDeadline, errDeadline)
}

// extend moves the deadline later; it never moves it earlier and has no
// effect once the term ended.
func (t *term) extend(until time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended || !until.After(t.deadline) {
		return
	}
	t.deadline = until
	// The armed timer fires at the old deadline and re-arms itself; no need
	// to reset it on every renewal.
}

// end finishes the term: cancels its context at once and wakes the
// candidate's loop. It reports whether this call ended it.
func (t *term) end(reason LossReason, err error) bool {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return false
	}
	t.ended = true
	t.reason = reason
	t.err = err
	if t.timer != nil {
		t.timer.Stop()
	}
	t.cancel(err)
	t.mu.Unlock()
	t.onEnded()
	return true
}

// valid reports whether the term is live and before its deadline.
func (t *term) valid() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.ended && t.cand.el.clock.Now().Before(t.deadline)
}

// startWork registers one piece of leader-only work; it reports false once
// the term ended, so that no work starts after step-down began.
func (t *term) startWork() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return false
	}
	t.work.Add(1)
	return true
}

func (t *term) runHandler(h Handler) {
	if !t.startWork() {
		return
	}
	go func() {
		defer t.work.Done()
		h(t.ctx, t.info)
	}()
}

// waitWork waits for the term's handlers to return, or for ctx to end; it
// reports whether they all returned.
func (t *term) waitWork(ctx context.Context) bool {
	done := make(chan struct{})
	go func() {
		t.work.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
