package election

import (
	"context"
	"fmt"
	"sync"
)

var errDeadline = fmt.Errorf("%w: no renewal succeeded before the local deadline", ErrLost)

// Candidate campaigns in one election on behalf of one participant. Once
// elected it keeps leadership, renewing through its [Elector]'s shared
// session, until Resign, Stop, or a failure to renew in time.
//
// The guarantee: the context handed to handlers is cancelled no later than
// (send time of the last successful renewal) + TTL − DriftMargin on the
// local monotonic clock, which is before the store can expire the claim and
// elect anyone else, provided the local clock does not run slower than the
// store's by more than DriftMargin over one TTL.
//
// A Candidate is single-use: after Stop it cannot be started again.
type Candidate struct {
	el  *Elector
	cfg CandidateConfig

	events   chan Event
	eventsMu sync.Mutex
	closedEv bool

	mu       sync.Mutex
	state    candState
	handlers []Handler
	cur      *term
	leader   *Leader

	wake     chan struct{}
	resignCh chan chan error
	life     context.Context
	stop     context.CancelFunc
	stopCtx  context.Context // the first Stop's context, for the release
	done     chan struct{}
	stopErr  error
}

type candState int

const (
	stateNew candState = iota
	stateRunning
	stateStopped
)

// NewCandidate returns a candidate for cfg.Name. It validates cfg once and
// returns every problem at once as an error wrapping [ErrInvalidArgument];
// it fails with [ErrStopped] after the elector was closed. It does no I/O.
func (e *Elector) NewCandidate(cfg CandidateConfig) (*Candidate, error) {
	if err := cfg.validate(e.backend); err != nil {
		return nil, err
	}
	if cfg.ID == "" {
		cfg.ID = defaultID()
	}
	if cfg.EventBuffer == 0 {
		cfg.EventBuffer = 64
	}
	meta := make(map[string]string, len(cfg.Metadata))
	for k, v := range cfg.Metadata {
		meta[k] = v
	}
	cfg.Metadata = meta
	c := &Candidate{
		el:       e,
		cfg:      cfg,
		events:   make(chan Event, cfg.EventBuffer),
		handlers: append([]Handler(nil), cfg.Handlers...),
		wake:     make(chan struct{}, 1),
		resignCh: make(chan chan error),
		done:     make(chan struct{}),
	}
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
	switch c.state {
	case stateRunning:
		c.mu.Unlock()
		return nil
	case stateStopped:
		c.mu.Unlock()
		return fmt.Errorf("%w: candidate %q in %q", ErrStopped, c.cfg.ID, c.cfg.Name)
	}
	c.state = stateRunning
	c.life, c.stop = context.WithCancel(context.Background())
	first := make(chan struct{})
	c.mu.Unlock()

	go c.run(first)
	select {
	case <-first:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop ends the candidacy: if leading, it cancels the leader context, waits
// for handlers to return and releases the election so that another candidate
// takes over at once. It waits for every goroutine of the candidate to exit
// and closes the Events channel. If handlers do not return before ctx ends,
// Stop does not release (the claim expires after its TTL instead, so the
// next leader cannot overlap with them) and returns ctx's error. Stop is
// idempotent and safe to call concurrently with Start.
func (c *Candidate) Stop(ctx context.Context) error {
	c.mu.Lock()
	switch c.state {
	case stateNew:
		c.state = stateStopped
		c.mu.Unlock()
		c.el.removeCandidate(c)
		c.closeEvents()
		close(c.done)
		return nil
	case stateRunning:
		c.state = stateStopped
		c.stopCtx = ctx
		c.stop()
	}
	c.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("election: stop %q in %q: %w", c.cfg.ID, c.cfg.Name, ctx.Err())
	}
	c.el.removeCandidate(c)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopErr
}

// Resign hands leadership over without stopping: it cancels the leader
// context, waits for handlers (bounded by ctx) and releases the election.
// The candidate then stays a follower and does not claim again until
// another candidate has been elected or one TTL has passed with none, so
// that leadership really moves. It returns [ErrNotLeader] if the candidate
// does not lead, and [ErrStopped] if it is not running.
func (c *Candidate) Resign(ctx context.Context) error {
	c.mu.Lock()
	running := c.state == stateRunning
	c.mu.Unlock()
	if !running {
		return fmt.Errorf("%w: resign: candidate not running", ErrStopped)
	}
	reply := make(chan error, 1)
	select {
	case c.resignCh <- reply:
	case <-c.done:
		return fmt.Errorf("%w: resign: candidate stopped", ErrStopped)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// IsLeader reports whether the candidate leads now: it holds a term whose
// local deadline has not passed.
func (c *Candidate) IsLeader() bool {
	t := c.currentTerm()
	return t != nil && t.valid()
}

// Term returns the current term and true if the candidate leads.
func (c *Candidate) Term() (Term, bool) {
	t := c.currentTerm()
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
	if c.leader == nil {
		return Leader{}, false
	}
	return *c.leader, true
}

// Events returns the candidate's event stream: claim attempts, renewal
// failures, watch failures, leadership gained and lost with a reason. It is
// buffered (CandidateConfig.EventBuffer); when full, the oldest event is
// dropped. It is closed when the candidate stops. Every event also goes to
// Config.OnEvent, which never drops.
func (c *Candidate) Events() <-chan Event { return c.events }

// AddHandlers adds leader-only work. Added while the candidate leads, the
// handlers start at once for the current term. Nil handlers are ignored.
func (c *Candidate) AddHandlers(hs ...Handler) {
	c.mu.Lock()
	t := c.cur
	for _, h := range hs {
		if h == nil {
			continue
		}
		c.handlers = append(c.handlers, h)
		if t != nil {
			t.runHandler(h)
		}
	}
	c.mu.Unlock()
}

// RunIfLeader runs fn only while the candidate leads: it returns
// [ErrNotLeader] without calling fn if it does not, and otherwise calls fn
// with a context cancelled when ctx ends or leadership ends, whichever is
// first. Step-down waits for fn to return, like a handler. It returns fn's
// error.
func (c *Candidate) RunIfLeader(ctx context.Context, fn func(ctx context.Context, t Term) error) error {
	t := c.currentTerm()
	if t == nil || !t.valid() || !t.startWork() {
		return fmt.Errorf("%w: %q in %q", ErrNotLeader, c.cfg.ID, c.cfg.Name)
	}
	defer t.work.Done()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(t.ctx, func() { cancel(context.Cause(t.ctx)) })
	defer stop()
	return fn(ctx, t.info)
}

func (c *Candidate) currentTerm() *term {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

func (c *Candidate) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// deliver sends ev to OnEvent and the Events channel.
func (c *Candidate) deliver(ev Event) {
	if ev.Election == "" {
		// Session-wide events reach OnEvent once, from the elector.
		ev.Election, ev.Candidate = c.cfg.Name, c.cfg.ID
	} else {
		c.el.emit(ev)
	}
	c.eventsMu.Lock()
	defer c.eventsMu.Unlock()
	if c.closedEv {
		return
	}
	for {
		select {
		case c.events <- ev:
			return
		default:
		}
		select {
		case <-c.events: // drop the oldest
		default:
		}
	}
}

func (c *Candidate) event(kind EventKind) Event {
	return Event{Kind: kind, Time: c.el.clock.Now(), Election: c.cfg.Name, Candidate: c.cfg.ID}
}

func (c *Candidate) closeEvents() {
	c.eventsMu.Lock()
	defer c.eventsMu.Unlock()
	if !c.closedEv {
		c.closedEv = true
		close(c.events)
	}
}
