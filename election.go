package election

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

var errDeadline = fmt.Errorf("%w: no renewal succeeded before the local deadline", ErrLost)

// errFromHandler is the cause with which Stop, Resign and Close give up
// waiting at once when called from a handler the step-down waits for.
var errFromHandler = errors.New("called from a handler of the term, which the step-down waits for")

// Candidate campaigns in one election on behalf of one participant. Once
// elected it keeps leadership, renewing through its [Elector]'s shared
// session, until Resign, Stop, Close or a failure to renew in time.
//
// The guarantee: the context handed to handlers is cancelled no later than
// (send time of the last successful renewal) + TTL − DriftMargin on the
// local monotonic clock, which is before the store can expire the claim and
// elect anyone else, provided the local clock does not run slower than the
// store's by more than DriftMargin over one TTL. And the claim outlives the
// handlers: it is released only once the last handler of its term has
// returned.
//
// A Candidate is single-use: after Stop it cannot be started again. Its
// life is a state machine ([State]); lifecycle.go has the diagram.
type Candidate struct {
	el  *Elector
	cfg CandidateConfig

	inbox mailbox
	drv   driver // owned by the running activation (driver.go)
	first latch  // closed after the first claim attempt
	done  latch  // closed when stopped
	// handlers counts handler goroutines, so that Stop returns only once
	// they are gone.
	handlers sync.WaitGroup
	watch    *follower // set by Start

	events       chan Event
	eventsMu     sync.Mutex
	eventsClosed bool

	mu          sync.Mutex
	handlerList []Handler
	started     bool
	stopAsked   bool
	pub         struct {
		state  State
		term   *term
		leader *Leader
	}
	changed changes // closed at each change of pub
	stopErr error
}

// NewCandidate returns a candidate for cfg.Name. It validates cfg once and
// returns every problem at once as an error wrapping [ErrInvalidArgument];
// it fails with [ErrStopped] after the elector was closed. It does no I/O.
func (e *Elector) NewCandidate(cfg CandidateConfig) (*Candidate, error) {
	if err := cfg.validate(e.backend); err != nil {
		return nil, err
	}
	if cfg.ID == "" {
		cfg.ID = e.cfg.ID
	}
	if cfg.ID == "" {
		cfg.ID = e.defaultID()
	}
	if cfg.EventBuffer == 0 {
		cfg.EventBuffer = 64
	}
	// A copy, so that the caller's map can change; nil when empty (no
	// map for each of 100,000 elections without metadata).
	var meta map[string]string
	if n := len(e.cfg.Metadata) + len(cfg.Metadata); n > 0 {
		meta = make(map[string]string, n)
		for k, v := range e.cfg.Metadata {
			meta[k] = v
		}
		for k, v := range cfg.Metadata {
			meta[k] = v
		}
	}
	cfg.Metadata = meta
	c := &Candidate{
		el:          e,
		cfg:         cfg,
		handlerList: append([]Handler(nil), cfg.Handlers...),
	}
	c.inbox.drain = c.activate
	c.drv.s = lifecycle{state: StateIdle, id: cfg.ID, ttl: e.cfg.TTL}
	if err := e.addCandidate(c); err != nil {
		return nil, err
	}
	return c, nil
}

// ID returns the candidate's ID.
func (c *Candidate) ID() string { return c.cfg.ID }

// Election returns the election name.
func (c *Candidate) Election() string { return c.cfg.Name }

// Start begins campaigning. It makes the first claim attempt synchronously,
// so that IsLeader is accurate when it returns, then campaigns and renews in
// the background. Store errors do not fail Start: they are reported as
// events and the candidate retries with backoff. Start returns ctx's error
// if ctx ends before the first attempt completes (campaigning goes on), and
// [ErrStopped] after Stop. Start is idempotent.
func (c *Candidate) Start(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.stopAsked:
		c.mu.Unlock()
		return fmt.Errorf("%w: candidate %q in %q", ErrStopped, c.cfg.ID, c.cfg.Name)
	case c.started:
		c.mu.Unlock()
		return nil
	}
	c.started = true
	c.watch = c.el.newFollower(c.cfg.Name, func(ev WatchEvent) { c.post(input{kind: inWatch, watch: ev}) }, c.holds)
	c.post(input{kind: inStart})
	c.mu.Unlock()
	// Outside c.mu: the follower's events take its lock, then c.mu (holds).
	// A Stop meanwhile may have stopped the follower: start then does
	// nothing.
	c.watch.start()

	select {
	case <-c.first.wait():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// requestStop asks the candidate to stop; it does not wait. A candidate
// that never started stops here and now.
func (c *Candidate) requestStop() {
	c.mu.Lock()
	if c.stopAsked {
		c.mu.Unlock()
		return
	}
	c.stopAsked = true
	if c.started {
		c.mu.Unlock()
		c.post(input{kind: inStop})
		return
	}
	c.pub.state = StateStopped
	c.changed.fire()
	c.mu.Unlock()
	c.emit(Event{Kind: EventStopped, State: StateStopped})
	c.closeEvents()
	c.el.removeCandidate(c)
	c.done.fire()
}

// Stop ends the candidacy. If the candidate leads, it cancels the leader
// context, waits for the handlers to return, then releases the election so
// that another candidate takes over at once; if its claim waits in line, it
// takes it out. It returns once the candidate has stopped and every
// goroutine of its own has exited, and closes the Events channel.
//
// The claim outlives the handlers: if ctx ends while handlers still run,
// Stop returns an error wrapping [ErrHandlersRunning] and ctx's error, and
// the candidate keeps the claim (its elector keeps renewing it) and releases
// it when the last handler returns; [Candidate.Done] is closed then. A ctx
// that has already ended when Stop is called (`defer c.Stop(signalCtx)`)
// still hands over at once: the handlers, just cancelled, get up to
// Config.OpTimeout to return, then the claim gets one release attempt of
// at most OpTimeout. Called from one of its own handlers, Stop cannot wait
// for that handler: it starts the step-down and returns the
// ErrHandlersRunning error at once.
//
// A release the store did not answer is returned as an error wrapping
// [ErrUnavailable]; the elector retries it in the background. Stop is
// idempotent and safe to call from anywhere: handlers, event callbacks,
// concurrently with Start.
func (c *Candidate) Stop(ctx context.Context) error {
	c.requestStop()
	ctx, cancel := c.el.waitContext(ctx, c)
	defer cancel()
	return c.awaitStopped(ctx, "stop")
}

// Done returns a channel that is closed once the candidate has stopped: its
// handlers have returned and its claim has been released (or handed to its
// elector to release, if the store did not answer).
func (c *Candidate) Done() <-chan struct{} { return c.done.wait() }

// awaitStopped waits until the candidate has stopped, or ctx has ended
// while handlers still run.
func (c *Candidate) awaitStopped(ctx context.Context, op string) error {
	w := c.newWaiter(ctx)
	defer w.stop()
	for {
		select {
		case <-c.done.wait():
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.stopErr != nil {
				return fmt.Errorf("election: %s %q in %q: %w", op, c.cfg.ID, c.cfg.Name, c.stopErr)
			}
			return nil
		default:
		}
		changed, err := c.waitable(w, op)
		if err != nil {
			return err
		}
		select {
		case <-c.done.wait():
		case <-changed:
		case <-liveDone(ctx):
		case <-w.pending():
		}
	}
}

// waiter is how Stop, Resign and Close wait: until they are done, or until
// their context has ended while handlers still run. A context that had
// already ended when the call was made (the common `defer
// c.Stop(signalCtx)`) first gives the handlers, just cancelled, a grace of
// OpTimeout to return, so that a handler that returns promptly is still
// released by the call. A call from a handler gets no grace: it cannot
// wait for itself.
type waiter struct {
	ctx   context.Context
	grace chan struct{} // closed once the grace has passed
	timer Timer
}

func (c *Candidate) newWaiter(ctx context.Context) *waiter {
	w := &waiter{ctx: ctx, grace: make(chan struct{})}
	if ctx.Err() == nil || errors.Is(context.Cause(ctx), errFromHandler) {
		close(w.grace)
		return w
	}
	w.timer = c.el.clock.AfterFunc(c.el.cfg.OpTimeout, func() { close(w.grace) })
	return w
}

func (w *waiter) stop() {
	if w.timer != nil {
		w.timer.Stop()
	}
}

// over reports whether the wait may give up on running handlers.
func (w *waiter) over() bool {
	if w.ctx.Err() == nil {
		return false
	}
	select {
	case <-w.grace:
		return true
	default:
		return false
	}
}

// pending is a channel that fires when the grace ends, nil once it has.
func (w *waiter) pending() <-chan struct{} {
	select {
	case <-w.grace:
		return nil
	default:
		return w.grace
	}
}

// waitable returns the channel to wait on for the next change, or the
// error to return because the wait is over while handlers run.
func (c *Candidate) waitable(w *waiter, op string) (<-chan struct{}, error) {
	c.mu.Lock()
	state, t, changed := c.pub.state, c.pub.term, c.changed.next()
	c.mu.Unlock()
	if w.over() && state == StateSteppingDown && t != nil && t.running() {
		return nil, fmt.Errorf("election: %s %q in %q: %w; the claim is kept until they return: %w",
			op, c.cfg.ID, c.cfg.Name, ErrHandlersRunning, context.Cause(w.ctx))
	}
	return changed, nil
}

// liveDone is ctx.Done(), or nil once ctx has ended (so that a wait on it
// does not spin).
func liveDone(ctx context.Context) <-chan struct{} {
	if ctx.Err() != nil {
		return nil
	}
	return ctx.Done()
}

// Resign hands leadership over without stopping: it cancels the leader
// context, waits for the handlers, releases the election, and returns the
// release's error. The candidate then stays a follower ([StateResigned])
// and does not claim again until another candidate has been elected or one
// TTL has passed with none, so that leadership really moves. It returns
// [ErrNotLeader] if the candidate does not lead, and [ErrStopped] if it is
// not running.
//
// As with Stop, the claim outlives the handlers: if ctx ends while they
// still run, Resign returns an error wrapping [ErrHandlersRunning] and the
// release happens when they return; called from one of the candidate's
// handlers, it returns that error at once.
func (c *Candidate) Resign(ctx context.Context) error {
	c.mu.Lock()
	running := c.started && !c.stopAsked
	c.mu.Unlock()
	if !running {
		return fmt.Errorf("%w: resign %q in %q: candidate not running", ErrStopped, c.cfg.ID, c.cfg.Name)
	}
	reply := make(chan error, 1)
	c.post(input{kind: inResign, reply: reply})
	ctx, cancel := c.el.waitContext(ctx, c)
	defer cancel()
	w := c.newWaiter(ctx)
	defer w.stop()
	for {
		select {
		case err := <-reply:
			return c.resigned(err)
		default:
		}
		changed, err := c.waitable(w, "resign")
		if err != nil {
			return err
		}
		select {
		case err := <-reply:
			return c.resigned(err)
		case <-c.done.wait():
			// Stopped before the driver took the Resign: no reply comes.
			select {
			case err := <-reply:
				return c.resigned(err)
			default:
				return fmt.Errorf("%w: resign %q in %q: candidate stopped", ErrStopped, c.cfg.ID, c.cfg.Name)
			}
		case <-changed:
		case <-liveDone(ctx):
		case <-w.pending():
		}
	}
}

// resigned words the answer to a Resign.
func (c *Candidate) resigned(err error) error {
	if err != nil && !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrStopped) {
		err = fmt.Errorf("election: resign %q in %q: %w", c.cfg.ID, c.cfg.Name, err)
	}
	return err
}

// State returns the candidate's state now.
func (c *Candidate) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pub.state
}

// IsLeader reports whether the candidate leads now: it holds a term whose
// local deadline has not passed and that has not ended.
func (c *Candidate) IsLeader() bool {
	t := c.leadingTerm()
	return t != nil && t.valid()
}

// Term returns the current term and true if the candidate leads.
func (c *Candidate) Term() (Term, bool) {
	t := c.leadingTerm()
	if t == nil || !t.valid() {
		return Term{}, false
	}
	return t.info, true
}

// Leader returns the leader of the election as last seen by this candidate
// (its own term, or the holder its watch or claims reported), and false if
// none is known.
func (c *Candidate) Leader() (Leader, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pub.leader == nil {
		return Leader{}, false
	}
	return *c.pub.leader, true
}

// Events returns the candidate's event stream: every change of state and
// what caused it (claims, losses, step-downs, releases), renewal trouble of
// its term, watch failures and leader changes. It is buffered
// (CandidateConfig.EventBuffer); when full, the oldest event is dropped. It
// is closed when the candidate stops; the last event then has State
// [StateStopped]. Every event also goes to Config.OnEvent, which never
// drops.
//
// The buffer is made by the first call, so that a candidate nobody reads
// events from costs no buffer: events before that call are not kept. Call
// Events before Start to receive every event (a change from earlier
// versions, which buffered from NewCandidate on). Called for the first time
// after the candidate stopped, it returns a closed, empty channel.
func (c *Candidate) Events() <-chan Event {
	c.eventsMu.Lock()
	defer c.eventsMu.Unlock()
	if c.events == nil {
		c.events = make(chan Event, c.cfg.EventBuffer)
		if c.eventsClosed {
			close(c.events)
		}
	}
	return c.events
}

// AddHandlers adds leader-only work. Added while the candidate leads, the
// handlers start at once for the current term. Nil handlers are ignored.
func (c *Candidate) AddHandlers(hs ...Handler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range hs {
		if h == nil {
			continue
		}
		c.handlerList = append(c.handlerList, h)
		if t := c.pub.term; t != nil && (c.pub.state == StateLeading || c.pub.state == StateUncertain) {
			t.runHandler(h)
		}
	}
}

// RunIfLeader runs fn only while the candidate leads: it returns
// [ErrNotLeader] without calling fn if it does not, and otherwise calls fn
// with a context cancelled when ctx ends or leadership ends, whichever is
// first. Like a handler, fn holds the claim: step-down waits for it to
// return before releasing. It returns fn's error.
func (c *Candidate) RunIfLeader(ctx context.Context, fn func(ctx context.Context, t Term) error) error {
	t := c.leadingTerm()
	g := goid()
	if t == nil || !t.startWork(g) {
		return fmt.Errorf("%w: %q in %q", ErrNotLeader, c.cfg.ID, c.cfg.Name)
	}
	defer t.doneWork(g)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	tctx := t.context()
	stop := context.AfterFunc(tctx, func() { cancel(context.Cause(tctx)) })
	defer stop()
	return fn(ctx, t.info)
}

// leadingTerm returns the term if the candidate is Leading or Uncertain.
func (c *Candidate) leadingTerm() *term {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pub.state != StateLeading && c.pub.state != StateUncertain {
		return nil
	}
	return c.pub.term
}

// runsHandler reports whether goroutine g runs a handler (or RunIfLeader)
// of the candidate's current term.
func (c *Candidate) runsHandler(g uint64) bool {
	c.mu.Lock()
	t := c.pub.term
	c.mu.Unlock()
	return t != nil && t.runs(g)
}
