package election

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"
)

// Elector runs elections on one [Backend] for one process. All its
// candidates share one store session (one etcd lease, one Consul session, one
// batched Redis renewal), renewed by one loop, so renewal costs O(1) round
// trips per interval whatever the number of elections held.
//
// An Elector opens its session lazily, on the first claim, and reopens it if
// the store expires it. Close stops every candidate and ends the session,
// but never before the handlers of a claim the session carries have
// returned.
type Elector struct {
	backend Backend
	cfg     Config
	clock   Clock
	rng     *lockedRand
	events  dispatcher

	// life ends when the elector has shut down: the renewal loop and
	// observers stop with it.
	life context.Context
	kill context.CancelFunc

	opening chan struct{} // a one-slot semaphore serialising session opening
	ops     chan struct{} // a semaphore bounding claims and releases in flight (maxOps)
	mu      sync.Mutex
	sess    *session
	closing bool
	cands   map[*Candidate]struct{}
	pending []pendingRelease
	newSess chan struct{} // wakes the renewal loop when a session opens
	// endBySession is set while Close leaves the claims of the candidates
	// it stops to the end of the session (SessionEnder); deferred are
	// those claims.
	endBySession bool
	deferred     []pendingRelease

	loops      sync.WaitGroup // the renewal loop and observers
	lastRound  time.Time      // guarded by mu: when the renewal loop last finished an attempt
	renewing   bool           // guarded by mu: the renewal loop runs
	closer     bool           // guarded by mu: a goroutine finishes a Close that gave up waiting
	finishing  bool           // guarded by mu: finish has begun
	finished   chan struct{}  // closed when finish's store calls are done
	finishErr  error          // set before finished is closed
	doneClosed bool           // guarded by mu
	done       chan struct{}
}

// New returns an Elector for b. It validates cfg once, with defaults applied,
// against b's Limits and returns every problem at once as an error wrapping
// [ErrInvalidArgument]. It does no I/O and starts no goroutine.
func New(b Backend, cfg Config) (*Elector, error) {
	if b == nil {
		return nil, invalid("backend", "nil")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(b.Limits()); err != nil {
		return nil, err
	}
	cfg.Metadata = maps.Clone(cfg.Metadata)
	life, kill := context.WithCancel(context.Background())
	e := &Elector{
		backend:  b,
		cfg:      cfg,
		clock:    cfg.Clock,
		rng:      newLockedRand(cfg.Rand),
		life:     life,
		kill:     kill,
		cands:    map[*Candidate]struct{}{},
		newSess:  make(chan struct{}, 1),
		opening:  make(chan struct{}, 1),
		ops:      make(chan struct{}, maxOps),
		finished: make(chan struct{}),
		done:     make(chan struct{}),
	}
	e.events.fn = cfg.OnEvent
	return e, nil
}

// Backend returns the backend the elector runs on.
func (e *Elector) Backend() Backend { return e.backend }

// Config returns the elector's configuration with defaults applied.
func (e *Elector) Config() Config { return e.cfg }

// Close stops every candidate of the elector (as [Candidate.Stop] does:
// handlers are cancelled and waited for, claims released), then stops the
// renewal loop and ends the store session. It returns the joined errors of
// the stops and of ending the session. It does not close the Backend.
//
// Where the session's end ends its claims at once ([SessionEnder]: etcd,
// Redis, Consul), Close does not release each claim: it ends the session
// once every handler has returned, one store write for any number of
// elections (on Consul, one transaction per 32 claims, then one). If
// handlers still run OpTimeout after Close began, the claims of the
// candidates that have stopped are released one by one, so that a slow
// handler does not hold the other elections.
//
// The claims outlive the handlers: if ctx ends while handlers still run,
// Close returns an error wrapping [ErrHandlersRunning] and ctx's error, and
// the elector keeps renewing the session until the last handler returns,
// then releases what is left and ends the session; [Elector.Done] is closed
// then. Called from a handler, Close starts the shutdown and returns that
// error at once. Close is idempotent; after the first call no candidate can
// be made and no session opened.
func (e *Elector) Close(ctx context.Context) error {
	e.mu.Lock()
	if !e.closing {
		e.closing = true
		if ender, ok := e.sessionLocked().(SessionEnder); ok && ender.EndsClaims() {
			e.endBySession = true
		}
	}
	cands := make([]*Candidate, 0, len(e.cands))
	for c := range e.cands {
		cands = append(cands, c)
	}
	e.mu.Unlock()
	for _, c := range cands {
		c.requestStop()
	}
	ctx, cancel := e.waitContext(ctx, nil)
	defer cancel()
	// Claims left to the session's end wait for every candidate's
	// handlers. They wait at most OpTimeout: after it, the claims of the
	// candidates that have stopped are released one by one, so that one
	// slow handler does not hold every other election.
	first, cancelFirst := context.WithTimeout(ctx, e.cfg.OpTimeout)
	errs := awaitAll(first, cands)
	cancelFirst()
	if running(errs) && ctx.Err() == nil {
		e.releaseDeferred()
		errs = awaitAll(ctx, cands)
	}
	waiting := running(errs)
	if waiting {
		e.releaseDeferred()
		// Finish once the handlers have returned: keep renewing till then.
		e.mu.Lock()
		start := !e.closer
		e.closer = true
		e.mu.Unlock()
		if start {
			go func() {
				for _, c := range cands {
					<-c.done.wait()
				}
				_ = e.finish()
			}()
		}
		return errors.Join(errs...)
	}
	if err := e.finish(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// running reports whether errs says that handlers still run.
func running(errs []error) bool {
	for _, err := range errs {
		if errors.Is(err, ErrHandlersRunning) {
			return true
		}
	}
	return false
}

// sessionLocked returns the store session, nil if none is open.
func (e *Elector) sessionLocked() Session {
	if e.sess == nil {
		return nil
	}
	return e.sess.s
}

// awaitAll waits for every candidate of cands to stop, or for ctx to end
// while its handlers run, and returns their errors. The candidates are
// waited for side by side (by at most 64 goroutines), so that each one's
// state is judged when Close is called, not after the others.
func awaitAll(ctx context.Context, cands []*Candidate) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan *Candidate)
	)
	for range min(len(cands), 64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				if err := c.awaitStopped(ctx, "close"); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, c := range cands {
		next <- c
	}
	close(next)
	wg.Wait()
	return errs
}

// Done returns a channel that is closed once the elector has shut down
// after Close: every candidate stopped, the session ended.
func (e *Elector) Done() <-chan struct{} { return e.done }

// finish shuts the elector down once every candidate has stopped: the
// renewal loop and observers end, the pending releases get one last try,
// the session ends, queued events are delivered, and Done is closed.
func (e *Elector) finish() error {
	e.mu.Lock()
	first := !e.finishing
	e.finishing = true
	e.mu.Unlock()
	if first {
		e.kill()
		e.loops.Wait()
		e.mu.Lock()
		s := e.sess
		e.sess = nil
		e.mu.Unlock()
		if s != nil {
			// One OpTimeout for the last releases and the session's end
			// together, also when the session carries the claims Close
			// left to it: a longer wait would hold a second Close, whose
			// context may have ended, past its bound (simulation seed
			// 54120). A store too slow for it leaves the claims to expire
			// after the TTL, as a crashed process's would.
			ctx, cancel := context.WithTimeout(context.Background(), e.cfg.OpTimeout)
			e.releasePending(ctx, "")
			e.mu.Lock()
			e.deferred = nil
			e.mu.Unlock()
			if err := s.s.Close(ctx); err != nil {
				e.finishErr = fmt.Errorf("election: close session: %w", err)
			}
			cancel()
		}
		close(e.finished)
	} else {
		// A channel, not a sync.Once: a second Close waits for the first
		// one's bounded store calls without holding a lock.
		<-e.finished
	}
	// An OnEvent callback that called Close cannot wait for itself.
	if !e.events.isSelf() {
		e.events.wait()
	}
	e.mu.Lock()
	if !e.doneClosed {
		e.doneClosed = true
		close(e.done)
	}
	e.mu.Unlock()
	return e.finishErr
}

// waitContext returns the context Stop, Resign or Close wait with: ctx,
// or one that has already ended if the caller is a handler the step-down
// waits for (of c, or of any candidate when c is nil), since waiting for
// it would never end.
func (e *Elector) waitContext(ctx context.Context, c *Candidate) (context.Context, context.CancelFunc) {
	g := goid()
	self := false
	if c != nil {
		self = c.runsHandler(g)
	} else {
		e.mu.Lock()
		for c := range e.cands {
			if c.runsHandler(g) {
				self = true
				break
			}
		}
		e.mu.Unlock()
	}
	if !self {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	cancel(errFromHandler)
	return ctx, func() {}
}

func (e *Elector) addCandidate(c *Candidate) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return fmt.Errorf("%w: elector closed", ErrStopped)
	}
	e.cands[c] = struct{}{}
	return nil
}

func (e *Elector) removeCandidate(c *Candidate) {
	e.mu.Lock()
	delete(e.cands, c)
	e.mu.Unlock()
}

// overrunGrace is how long after a term's deadline a handler still running
// is reported as overrunning: half the drift margin, well before the store
// can expire the claim.
func (e *Elector) overrunGrace() time.Duration { return e.cfg.DriftMargin / 2 }

// claim makes one claim (an enqueue where the store keeps a line) for c.
func (e *Elector) claim(c *Candidate, fenceSeen uint64) claimResult {
	select {
	case e.ops <- struct{}{}:
		defer func() { <-e.ops }()
	case <-e.life.Done():
		return claimResult{err: fmt.Errorf("election: claim %q: %w: elector closed", c.cfg.Name, ErrStopped)}
	}
	ctx, cancel := context.WithTimeout(e.life, e.cfg.OpTimeout)
	defer cancel()
	name := c.cfg.Name
	if !e.releasePending(ctx, name) {
		return claimResult{err: fmt.Errorf("election: release an earlier claim of %q: %w", name, ErrUnavailable)}
	}
	sess, err := e.freshSession(ctx)
	if err != nil {
		return claimResult{err: err}
	}
	token := e.rng.token()
	deadline := sess.deadline() // read before the claim is sent
	sent := e.clock.Now()
	req := ClaimRequest{Name: name, Token: token, ID: c.cfg.ID, Metadata: c.cfg.Metadata}
	var (
		cl     Claim
		holder *Leader
	)
	if q, ok := sess.s.(Queuer); ok {
		cl, holder, err = q.Enqueue(ctx, req)
	} else if cb, ok := sess.s.(ClaimBatcher); ok {
		cl, err = e.claimBatched(&sess.batch, cb, req)
	} else {
		cl, err = sess.s.Claim(ctx, req)
	}
	r := claimResult{latency: e.clock.Now().Sub(sent)}
	var taken *TakenError
	switch {
	case err == nil && cl.Fence <= fenceSeen:
		// Fences only grow: a store that hands out one already seen has
		// lost data (a restore from a snapshot, an unreplicated write
		// lost in a failover). The claim is released, and claims are
		// refused until the store's fences pass the one seen.
		r.term = newTerm(c, sess, cl, sent, deadline)
		r.err = fmt.Errorf("election: claim %q: %w: %w: the store gave fence %d, not above fence %d seen before",
			name, ErrUnavailable, ErrFenceWentBack, cl.Fence, fenceSeen)
	case err == nil:
		r.term, r.holder = newTerm(c, sess, cl, sent, deadline), holder
	case errors.As(err, &taken):
		r.taken = taken
	case errors.Is(err, ErrSessionExpired):
		e.expire(sess, err)
		r.err = fmt.Errorf("election: claim %q: %w", name, err)
	default:
		// The claim may have been applied without our hearing of it: the
		// term carries its token so that it can be released.
		r.term = newTerm(c, sess, Claim{Name: name, Token: token}, sent, deadline)
		r.err = fmt.Errorf("election: claim %q: %w", name, err)
	}
	return r
}

// freshSession returns the live session, opened if needed, renewed first
// if its last renewal covers too little time for a term to start.
func (e *Elector) freshSession(ctx context.Context) (*session, error) {
	s, err := e.currentSession(ctx)
	if err != nil {
		return nil, err
	}
	if s.deadline().Sub(e.clock.Now()) >= e.cfg.OpTimeout {
		return s, nil
	}
	// Renewals have been failing: a claim now would start a term that is
	// already (or all but) over. Renew first, or, if a renewal is in
	// flight, take its outcome rather than wait for it and then for one of
	// our own (two RenewTimeouts would hold up a Stop queued behind the
	// claim).
	unavailable := fmt.Errorf("election: renew session before claiming: %w", ErrUnavailable)
	waited := false
	select {
	case s.renewing <- struct{}{}:
	default:
		waited = true
		select {
		case s.renewing <- struct{}{}:
		case <-ctx.Done():
			return nil, unavailable
		}
	}
	ok := s.deadline().Sub(e.clock.Now()) >= e.cfg.OpTimeout
	if !ok && !waited {
		_, ok = e.renewLocked(s)
	}
	<-s.renewing
	if !ok || s.isDead() {
		return nil, unavailable
	}
	return s, nil
}

// currentSession returns the live session, opening one if needed.
func (e *Elector) currentSession(ctx context.Context) (*session, error) {
	// A channel, not a mutex: waiting for another goroutine's OpenSession
	// must end with ctx.
	select {
	case e.opening <- struct{}{}:
		defer func() { <-e.opening }()
	case <-ctx.Done():
		return nil, fmt.Errorf("election: open session: %w: %w", ErrUnavailable, ctx.Err())
	}
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: elector closed", ErrStopped)
	}
	if s := e.sess; s != nil && !s.isDead() {
		e.mu.Unlock()
		return s, nil
	}
	e.mu.Unlock()

	sent := e.clock.Now()
	st, err := e.backend.OpenSession(ctx, e.cfg.TTL)
	if err != nil {
		return nil, fmt.Errorf("election: open session: %w", err)
	}
	granted := st.TTL()
	if err := e.cfg.checkGranted(granted); err != nil {
		_ = st.Close(ctx)
		return nil, err
	}
	s := newSession(st, granted, e.cfg.DriftMargin, e.clock, sent)
	e.mu.Lock()
	if e.closing {
		// Closed while the session was opening: it must not outlive Close.
		e.mu.Unlock()
		_ = st.Close(ctx)
		return nil, fmt.Errorf("%w: elector closed", ErrStopped)
	}
	e.sess = s
	if !e.renewing {
		e.renewing = true
		e.loops.Add(1)
		go e.renewLoop()
	}
	e.mu.Unlock()
	select {
	case e.newSess <- struct{}{}:
	default:
	}
	return s, nil
}

// expire marks s dead and tells the candidates whose claims it carried.
func (e *Elector) expire(s *session, cause error) {
	terms, waiters, first := s.kill()
	if !first {
		return
	}
	for _, t := range terms {
		// The loss first, then the deadline of now: the deadline's timer
		// posts too, and the candidate must hear why it lost first.
		t.cand.post(input{kind: inSessionLost, term: t, err: cause})
		t.invalidate()
	}
	for _, t := range waiters {
		t.cand.post(input{kind: inSessionLost, term: t, err: cause})
	}
	// The session is gone on the store; closing it frees local resources.
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.OpTimeout)
	defer cancel()
	_ = s.s.Close(ctx)
}

// maxOps bounds the claims and releases an elector has in flight. Starting
// or stopping 100,000 candidates at once would otherwise send as many
// requests at once: they fill the client's connection pool (go-redis
// keeps 10 per core), the session's renewal queues behind them past its
// timeout, and held terms reach their deadline. With the bound, a
// renewal waits for at most one round of these, and 64 in flight still
// elects 10,000 elections in about a second on a loopback store.
const maxOps = 64

// renewLoop renews the live session every RenewInterval (with jitter),
// counted from the send time of the last successful renewal, and retries a
// failure after a backoff of at most RenewInterval/2, until the elector
// shuts down.
func (e *Elector) renewLoop() {
	defer e.loops.Done()
	failures := 0
	jitter := e.jitter(e.cfg.RenewInterval)
	for {
		e.mu.Lock()
		s := e.sess
		e.mu.Unlock()
		var wait time.Duration
		switch {
		case s == nil || s.isDead():
			select {
			case <-e.newSess:
				continue
			case <-e.life.Done():
				return
			}
		case failures > 0:
			wait = min(e.backoff(e.cfg.RetryMin, e.cfg.RetryMax, failures), e.cfg.RenewInterval/2)
		default:
			wait = s.lastRenewal().Add(jitter).Sub(e.clock.Now())
		}
		if !sleep(e.life, e.clock, wait) {
			return
		}
		if failures == 0 && e.clock.Now().Before(s.lastRenewal().Add(jitter)) {
			continue // renewed meanwhile (before a claim)
		}
		_, ok := e.renewOnce(s)
		e.mu.Lock()
		e.lastRound = e.clock.Now()
		e.mu.Unlock()
		if !ok {
			failures++
			continue
		}
		failures = 0
		jitter = e.jitter(e.cfg.RenewInterval)
		// After the renewal, never before it: a slow store must not
		// delay the renewal that keeps leaders leading.
		ctx, cancel := context.WithTimeout(e.life, e.cfg.OpTimeout)
		e.releasePending(ctx, "")
		cancel()
		e.mu.Lock()
		e.lastRound = e.clock.Now()
		e.mu.Unlock()
	}
}

// Status is a snapshot of an elector's store session and renewal loop,
// for health checks (package health).
type Status struct {
	// Session reports whether a store session is open: some candidate
	// has campaigned and the session has not expired.
	Session bool
	// LastRenewal is the send time of the session's last successful
	// renewal (or of its opening), on the elector's clock; zero without a
	// session.
	LastRenewal time.Time
	// Deadline is LastRenewal + TTL − DriftMargin: until then the
	// session's claims are the elector's; zero without a session.
	Deadline time.Time
	// Stalled reports a renewal loop that has finished no step for
	// longer than TTL + OpTimeout while a session is open. A healthy loop
	// finishes a renewal attempt at least every RenewInterval×(1+
	// RenewJitter) + RenewTimeout, which validation keeps below the TTL,
	// and after a successful one retries pending releases for at most
	// OpTimeout: a stalled loop is stuck (a backend that ignores its
	// context, a deadlock), and the process should be restarted.
	Stalled bool
	// Closed reports that Close has been called.
	Closed bool
}

// Status reports the state of the elector's session and renewal loop.
// It does no I/O.
func (e *Elector) Status() Status {
	now := e.clock.Now()
	e.mu.Lock()
	s, last, closed := e.sess, e.lastRound, e.closing
	e.mu.Unlock()
	st := Status{Closed: closed}
	if s == nil || s.isDead() {
		return st
	}
	st.Session = true
	st.LastRenewal = s.lastRenewal()
	st.Deadline = st.LastRenewal.Add(s.ttl - e.cfg.DriftMargin)
	if st.LastRenewal.After(last) {
		last = st.LastRenewal
	}
	st.Stalled = now.Sub(last) > e.cfg.TTL+e.cfg.OpTimeout
	return st
}

// renewOnce renews s and every claim it carries, moves the terms'
// deadlines to the renewal's send time + TTL − DriftMargin, and tells the
// candidates what changed. It reports whether the store answered.
//
// An idle renewal costs O(1) here whatever the number of claims: bound
// terms follow the session's deadline, the claims slice is rebuilt only
// when claims came or went, and candidates hear of a renewal only when its
// outcome differs from the last one they heard of.
func (e *Elector) renewOnce(s *session) (time.Time, bool) {
	select {
	case s.renewing <- struct{}{}:
		defer func() { <-s.renewing }()
	case <-e.life.Done():
		return e.clock.Now(), false
	}
	return e.renewLocked(s)
}

// renewLocked is renewOnce with the session's renewal slot held.
func (e *Elector) renewLocked(s *session) (time.Time, bool) {
	claims, terms, loose := s.forRenewal()
	ctx, cancel := context.WithTimeout(e.life, e.cfg.RenewTimeout)
	defer cancel()
	sent := e.clock.Now()
	err := s.s.Renew(ctx, claims)
	latency := e.clock.Now().Sub(sent)

	var notOwner *NotOwnerError
	switch {
	case err == nil || errors.As(err, &notOwner):
		var lost map[*term]bool
		if notOwner != nil && len(notOwner.Claims) > 0 {
			byClaim := make(map[Claim]bool, len(notOwner.Claims))
			for _, c := range notOwner.Claims {
				byClaim[Claim{Name: c.Name, Token: c.Token}] = true
			}
			lost = map[*term]bool{}
			for i, c := range claims {
				if byClaim[Claim{Name: c.Name, Token: c.Token}] {
					lost[terms[i]] = true
				}
			}
		}
		for t := range lost {
			s.loosen(t)
			t.cand.post(input{kind: inRenewed, term: t, renew: renewNotOwner})
			t.invalidate() // after the loss: see expire
		}
		s.renewed(sent)
		until := sent.Add(s.ttl - e.cfg.DriftMargin)
		for _, t := range loose {
			if !lost[t] {
				t.extend(until)
			}
		}
		s.bind(loose)
		if s.setDegraded(false) {
			for _, t := range terms {
				if !lost[t] && t.postRenew(renewOK) {
					t.cand.post(input{kind: inRenewed, term: t, renew: renewOK})
				}
			}
		}
		e.events.push(Event{Kind: EventRenewed, Time: sent, Latency: latency, Count: len(claims) - len(lost),
			TTL: s.ttl, Err: redact(err)})
		return sent, true
	case errors.Is(err, ErrSessionExpired):
		e.events.push(Event{Kind: EventRenewFailed, Time: sent, Latency: latency, Count: len(claims), Err: redact(err)})
		e.expire(s, err)
		return sent, true
	default:
		err = redact(err)
		e.events.push(Event{Kind: EventRenewFailed, Time: sent, Latency: latency, Count: len(claims), Err: err})
		s.setDegraded(true)
		for _, t := range terms {
			if t.postRenew(renewFailed) {
				t.cand.post(input{kind: inRenewed, term: t, renew: renewFailed, err: err})
			}
		}
		return sent, false
	}
}

// postRenew records a renewal outcome for t and reports whether it differs
// from the last one posted, so that each candidate hears of changes only.
func (t *term) postRenew(o renewOutcome) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.posted == o {
		return false
	}
	t.posted = o
	return true
}

func (e *Elector) jitter(d time.Duration) time.Duration {
	j := e.cfg.RenewJitter
	if j == 0 {
		return d
	}
	f := 1 + j*(2*e.rng.float64()-1)
	return time.Duration(float64(d) * f)
}

// backoff returns the n-th (1-based) exponential backoff delay within
// [lo, hi], with full jitter in its upper half.
func (e *Elector) backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + time.Duration(e.rng.int64n(int64(d/2)+1))
}

// sleep waits d on clock, or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, clock Clock, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	done := make(chan struct{})
	t := clock.AfterFunc(d, func() { close(done) })
	select {
	case <-done:
		return true
	case <-ctx.Done():
		t.Stop()
		return false
	}
}
