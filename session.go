package election

import (
	"sync"
	"sync/atomic"
	"time"
)

// session is the elector's view of its store session: when it was last
// renewed, and the claims it carries.
//
// A held claim's deadline (the local time by which its term must end) is
// either the term's own, watched by the term's own timer, or bound to the
// session: the send time of the session's last successful renewal + TTL −
// DriftMargin, watched by one timer for the whole session. A term is bound
// once a renewal that carried its claim has succeeded, because from then on
// every renewal carries it (renewals run one at a time, and each carries
// every tracked claim) until it is untracked or lost. Binding is what makes
// an idle election cost nothing per renewal: a renewal moves one number, and
// one timer per session, not one per election, watches the deadline.
type session struct {
	s     Session
	ttl   time.Duration
	drift time.Duration
	clock Clock
	// base is the send time of OpenSession. lastRenew is the send time of
	// the last successful renewal (or OpenSession) as an offset from base,
	// read without a lock by bound terms: the store keeps every claim of
	// the session until at least base + lastRenew + ttl on its own clock.
	base      time.Time
	lastRenew atomic.Int64

	// batch gathers claims for a ClaimBatcher.
	batch claimBatch

	// renewing makes renewals run one at a time (see the type comment).
	// A channel, not a mutex: a renewal waits for one in flight, which
	// waits for the store, and a wait on a channel is one that
	// testing/synctest sees as blocked.
	renewing chan struct{}

	// mu is taken before a term's mu, never after it.
	mu sync.Mutex
	// terms are the claims renewed with the session: held claims, including
	// those of terms stepping down whose handlers still run. Those not in
	// loose are bound.
	terms map[*term]struct{}
	// loose are the tracked terms with a deadline of their own: not yet
	// covered by a successful renewal, past a deadline, or not held.
	loose map[*term]struct{}
	// waiters are the claims in the store's line through this session.
	waiters map[*term]struct{}
	dead    bool
	// claims and claimTerms (same order) are what the next renewal
	// carries; nil when terms changed since they were built.
	claims     []Claim
	claimTerms []*term
	// degraded records that a failed renewal was posted to the terms: the
	// next successful one tells every term.
	degraded bool
	// timer watches the bound terms' deadline; nil when it is not armed.
	// timerGen tells its calls from those of timers it replaced.
	timer    Timer
	timerGen uint64
}

func newSession(s Session, ttl, drift time.Duration, clock Clock, opened time.Time) *session {
	return &session{s: s, ttl: ttl, drift: drift, clock: clock, base: opened, renewing: make(chan struct{}, 1),
		terms: map[*term]struct{}{}, loose: map[*term]struct{}{}, waiters: map[*term]struct{}{}}
}

// deadline returns the local time by which a claim covered by the session's
// last renewal must be treated as lost: the last renewal's send time + TTL
// − DriftMargin. It takes no lock.
func (s *session) deadline() time.Time {
	return s.lastRenewal().Add(s.ttl - s.drift)
}

func (s *session) lastRenewal() time.Time {
	return s.base.Add(time.Duration(s.lastRenew.Load()))
}

// renewed records a successful renewal sent at sent. It moves the deadline
// of every bound term; the session's timer, armed at the old deadline,
// re-arms itself when it fires.
func (s *session) renewed(sent time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off := int64(sent.Sub(s.base)); off > s.lastRenew.Load() {
		s.lastRenew.Store(off)
	}
}

// track makes t's claim one the session renews. Its deadline stays its own
// until a renewal that carried the claim succeeds.
func (s *session) track(t *term) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dead {
		s.terms[t] = struct{}{}
		s.loose[t] = struct{}{}
		s.claims, s.claimTerms = nil, nil
	}
}

// untrack stops renewing t's claim and forgets it as a waiter. A bound t
// keeps the session's current deadline as its own.
func (s *session) untrack(t *term) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.terms[t]; ok {
		delete(s.terms, t)
		delete(s.loose, t)
		s.claims, s.claimTerms = nil, nil
	}
	delete(s.waiters, t)
	s.loosenLocked(t)
}

// loosen gives a tracked t a deadline of its own again: the session's
// current one, watched by t's own timer.
func (s *session) loosen(t *term) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.terms[t]; ok {
		s.loose[t] = struct{}{}
	}
	s.loosenLocked(t)
}

func (s *session) loosenLocked(t *term) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.bound {
		return
	}
	t.bound = false
	t.deadline = s.deadline()
	if t.started && !t.doneSent {
		t.armLocked()
	}
}

// bind makes the deadline of each term in covered, whose claim a renewal
// that has just succeeded carried, the session's, where the term is held
// normally (started, before its deadline, not finished).
func (s *session) bind(covered []*term) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return
	}
	bound := false
	for _, t := range covered {
		if _, ok := s.loose[t]; !ok {
			continue // untracked meanwhile
		}
		if t.bind() {
			delete(s.loose, t)
			bound = true
		}
	}
	if bound && s.timer == nil {
		s.armLocked()
	}
}

// armLocked sets the session's timer for the bound terms' deadline.
func (s *session) armLocked() {
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timerGen++
	gen := s.timerGen
	s.timer = s.clock.AfterFunc(s.deadline().Sub(s.clock.Now()), func() { s.onTimer(gen) })
}

func (s *session) stopTimerLocked() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.timerGen++
}

// onTimer checks the bound terms' deadline: if a renewal has moved it, the
// timer re-arms; if it has passed, every bound term gets its deadline as
// its own and reaches it.
func (s *session) onTimer(gen uint64) {
	now := s.clock.Now()
	s.mu.Lock()
	if gen != s.timerGen {
		s.mu.Unlock()
		return
	}
	s.timer = nil
	d := s.deadline()
	if now.Before(d) {
		if len(s.loose) < len(s.terms) {
			s.armLocked()
		}
		s.mu.Unlock()
		return
	}
	var due []*term
	for t := range s.terms {
		if _, ok := s.loose[t]; !ok {
			s.loose[t] = struct{}{}
			due = append(due, t)
		}
	}
	s.mu.Unlock()
	for _, t := range due {
		t.reachBound(d, now)
	}
}

// forRenewal returns the claims a renewal carries, with their terms in the
// same order, and the loose terms among them.
func (s *session) forRenewal() (claims []Claim, terms, loose []*term) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claims == nil {
		s.claims = make([]Claim, 0, len(s.terms))
		s.claimTerms = make([]*term, 0, len(s.terms))
		for t := range s.terms {
			s.claims = append(s.claims, t.claim)
			s.claimTerms = append(s.claimTerms, t)
		}
	}
	loose = make([]*term, 0, len(s.loose))
	for t := range s.loose {
		loose = append(loose, t)
	}
	return s.claims, s.claimTerms, loose
}

// setDegraded records whether the terms last heard of a failed renewal,
// and reports whether they had.
func (s *session) setDegraded(d bool) (was bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	was, s.degraded = s.degraded, d
	return was
}

func (s *session) addWaiter(t *term) {
	s.mu.Lock()
	dead := s.dead
	if !dead {
		s.waiters[t] = struct{}{}
	}
	s.mu.Unlock()
	if dead {
		// The line went with the session: join anew.
		t.cand.post(input{kind: inSessionLost, term: t, err: ErrSessionExpired})
	}
}

func (s *session) removeWaiter(t *term) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.waiters, t)
}

func (s *session) isDead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

// kill marks the session dead and returns the claims it carried, each with
// a deadline of its own; first reports whether this call killed it.
func (s *session) kill() (terms, waiters []*term, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return nil, nil, false
	}
	s.dead = true
	s.stopTimerLocked()
	for t := range s.terms {
		s.loosenLocked(t)
		terms = append(terms, t)
	}
	for t := range s.waiters {
		waiters = append(waiters, t)
	}
	s.terms, s.loose, s.waiters = map[*term]struct{}{}, map[*term]struct{}{}, map[*term]struct{}{}
	s.claims, s.claimTerms = nil, nil
	return terms, waiters, true
}
