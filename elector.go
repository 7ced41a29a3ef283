package election

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Elector runs elections on one [Backend] for one process. All its
// candidates share one store session (one etcd lease, one Consul session, one
// batched Redis renewal), renewed by one loop, so renewal costs O(1) round
// trips per interval whatever the number of elections held.
//
// An Elector opens its session lazily, on the first claim, and reopens it if
// the store expires it. Close stops every candidate and ends the session.
type Elector struct {
	backend Backend
	cfg     Config
	clock   Clock

	openMu  sync.Mutex // serialises session opening
	mu      sync.Mutex
	sess    *session
	closed  bool
	cands   map[*Candidate]struct{}
	orphans []orphan

	loopCtx    context.Context
	loopCancel context.CancelFunc
	loopWG     sync.WaitGroup
	loopOnce   sync.Once
}

// New returns an Elector for b. It validates cfg once, with defaults applied,
// against b's Limits and returns every problem at once as an error wrapping
// [ErrInvalidArgument]. It does no I/O.
func New(b Backend, cfg Config) (*Elector, error) {
	if b == nil {
		return nil, invalid("backend", "nil")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(b.Limits()); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Elector{
		backend:    b,
		cfg:        cfg,
		clock:      cfg.Clock,
		cands:      map[*Candidate]struct{}{},
		loopCtx:    ctx,
		loopCancel: cancel,
	}, nil
}

// Backend returns the backend the elector runs on.
func (e *Elector) Backend() Backend { return e.backend }

// Config returns the elector's configuration with defaults applied.
func (e *Elector) Config() Config { return e.cfg }

// Close stops every candidate of the elector (releasing what they lead, as
// [Candidate.Stop] does), stops the renewal loop and ends the store session.
// It is idempotent. It returns the joined errors of the stops and of closing
// the session. It does not close the Backend.
func (e *Elector) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	cands := make([]*Candidate, 0, len(e.cands))
	for c := range e.cands {
		cands = append(cands, c)
	}
	e.mu.Unlock()

	// Stop candidates in parallel, bounded: each release is a round trip,
	// and a process may hold thousands of elections.
	var (
		errs  []error
		errMu sync.Mutex
		wg    sync.WaitGroup
		slots = make(chan struct{}, 64)
	)
	for _, c := range cands {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			if err := c.Stop(ctx); err != nil {
				errMu.Lock()
				errs = append(errs, fmt.Errorf("stop candidate %q in %q: %w", c.ID(), c.Election(), err))
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	e.loopCancel()
	e.loopWG.Wait()

	e.mu.Lock()
	s := e.sess
	e.sess = nil
	e.mu.Unlock()
	if s != nil {
		if err := s.s.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("election: close session: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (e *Elector) addCandidate(c *Candidate) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
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

func (e *Elector) emit(ev Event) {
	if e.cfg.OnEvent != nil {
		e.cfg.OnEvent(ev)
	}
}

// session is the elector's view of its store session.
type session struct {
	s   Session
	ttl time.Duration

	mu sync.Mutex
	// lastRenew is the send time of the last successful renewal, or of
	// OpenSession: the store keeps every claim of the session until at least
	// lastRenew + ttl on its own clock.
	lastRenew time.Time
	terms     map[*term]struct{}
	waiters   map[*Candidate]struct{} // candidates with a claim in line
	dead      bool
}

func (s *session) addWaiter(c *Candidate) {
	s.mu.Lock()
	if s.waiters == nil {
		s.waiters = map[*Candidate]struct{}{}
	}
	s.waiters[c] = struct{}{}
	s.mu.Unlock()
}

func (s *session) removeWaiter(c *Candidate) {
	s.mu.Lock()
	delete(s.waiters, c)
	s.mu.Unlock()
}

// deadline returns the local time by which a claim covered by the session's
// last renewal must be treated as lost.
func (s *session) deadline(drift time.Duration) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastRenew.Add(s.ttl - drift)
}

func (s *session) add(t *term) {
	s.mu.Lock()
	s.terms[t] = struct{}{}
	s.mu.Unlock()
}

func (s *session) remove(t *term) {
	s.mu.Lock()
	delete(s.terms, t)
	s.mu.Unlock()
}

func (s *session) snapshot() ([]*term, []Claim) {
	s.mu.Lock()
	defer s.mu.Unlock()
	terms := make([]*term, 0, len(s.terms))
	claims := make([]Claim, 0, len(s.terms))
	for t := range s.terms {
		terms = append(terms, t)
		claims = append(claims, t.claim)
	}
	return terms, claims
}

// currentSession returns the live session, opening one if needed.
func (e *Elector) currentSession(ctx context.Context) (*session, error) {
	e.openMu.Lock()
	defer e.openMu.Unlock()
	e.mu.Lock()
	if e.closed {
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
	if granted < e.cfg.TTL && e.cfg.RenewInterval >= granted-e.cfg.DriftMargin {
		_ = st.Close(ctx)
		return nil, invalid("TTL", "store granted %v, too short for RenewInterval %v and DriftMargin %v",
			granted, e.cfg.RenewInterval, e.cfg.DriftMargin)
	}
	s := &session{s: st, ttl: granted, lastRenew: sent, terms: map[*term]struct{}{}}
	e.mu.Lock()
	e.sess = s
	e.mu.Unlock()
	e.loopOnce.Do(func() {
		e.loopWG.Add(1)
		go e.renewLoop()
	})
	return s, nil
}

func (s *session) isDead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

// expire marks s dead, ends every term it covers and wakes the candidates
// waiting in line through it.
func (e *Elector) expire(s *session, cause error) {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	s.dead = true
	terms := make([]*term, 0, len(s.terms))
	for t := range s.terms {
		terms = append(terms, t)
	}
	waiters := make([]*Candidate, 0, len(s.waiters))
	for c := range s.waiters {
		waiters = append(waiters, c)
	}
	s.mu.Unlock()
	for _, t := range terms {
		t.end(LossSessionExpired, cause)
	}
	for _, c := range waiters {
		c.wakeUp() // their claims in line are gone: they join anew
	}
	// The session is gone on the store; closing it frees local resources.
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.RetryMax)
	defer cancel()
	_ = s.s.Close(ctx)
}

// renewLoop renews the current session every RenewInterval (with jitter),
// retrying failures with backoff, until the elector closes.
func (e *Elector) renewLoop() {
	defer e.loopWG.Done()
	failures := 0
	delay := e.jitter(e.cfg.RenewInterval)
	for {
		if !sleep(e.loopCtx, e.clock, delay) {
			return
		}
		e.mu.Lock()
		s := e.sess
		e.mu.Unlock()
		if s == nil || s.isDead() {
			delay = e.jitter(e.cfg.RenewInterval)
			continue
		}
		if e.renewOnce(s) {
			failures = 0
			delay = e.jitter(e.cfg.RenewInterval)
			// After the renewal, never before it: a slow store must not
			// delay the renewal that keeps leaders leading.
			ctx, cancel := context.WithTimeout(e.loopCtx, e.cfg.RenewInterval/2)
			e.releaseOrphans(ctx, "")
			cancel()
		} else {
			failures++
			delay = min(backoff(e.cfg.RetryMin, e.cfg.RetryMax, failures), e.cfg.RenewInterval)
		}
	}
}

// renewOnce renews s and every claim it covers, and moves each term's
// deadline to the renewal's send time + TTL − DriftMargin. It reports
// whether the store answered.
func (e *Elector) renewOnce(s *session) bool {
	terms, claims := s.snapshot()
	ctx, cancel := context.WithTimeout(e.loopCtx, e.cfg.RenewInterval)
	defer cancel()
	sent := e.clock.Now()
	err := s.s.Renew(ctx, claims)
	latency := e.clock.Now().Sub(sent)

	var notOwner *NotOwnerError
	switch {
	case err == nil || errors.As(err, &notOwner):
		lost := map[string]bool{}
		if notOwner != nil {
			for _, c := range notOwner.Claims {
				lost[c.Name+"\x00"+c.Token] = true
			}
		}
		s.mu.Lock()
		if sent.After(s.lastRenew) {
			s.lastRenew = sent
		}
		s.mu.Unlock()
		until := sent.Add(s.ttl - e.cfg.DriftMargin)
		for _, t := range terms {
			if lost[t.claim.Name+"\x00"+t.claim.Token] {
				t.end(LossNotOwner, fmt.Errorf("%w: renew: %w", ErrLost, err))
				continue
			}
			t.extend(until)
		}
		e.emit(Event{Kind: EventRenewed, Time: sent, Latency: latency, Count: len(claims) - len(lost), TTL: s.ttl, Err: err})
		return true
	case errors.Is(err, ErrSessionExpired):
		e.emit(Event{Kind: EventRenewFailed, Time: sent, Latency: latency, Count: len(claims), Err: err})
		e.expire(s, err)
		return true
	default:
		ev := Event{Kind: EventRenewFailed, Time: sent, Latency: latency, Count: len(claims), Err: err}
		e.emit(ev)
		for _, t := range terms {
			t.cand.deliver(ev)
		}
		return false
	}
}

func (e *Elector) jitter(d time.Duration) time.Duration {
	j := e.cfg.RenewJitter
	if j == 0 {
		return d
	}
	f := 1 + j*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

// backoff returns the n-th (1-based) exponential backoff delay within
// [lo, hi], with full jitter in its upper half.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// sleep waits d on clock, or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, clock Clock, d time.Duration) bool {
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
