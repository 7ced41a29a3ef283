package election

import (
	"sync"
	"time"
)

// session is the elector's view of its store session: when it was last
// renewed, and the claims it carries.
type session struct {
	s   Session
	ttl time.Duration

	mu sync.Mutex
	// lastRenew is the send time of the last successful renewal, or of
	// OpenSession: the store keeps every claim of the session until at least
	// lastRenew + ttl on its own clock.
	lastRenew time.Time
	// terms are the claims renewed with the session: held claims, including
	// those of terms stepping down whose handlers still run.
	terms map[*term]struct{}
	// waiters are the claims in the store's line through this session.
	waiters map[*term]struct{}
	dead    bool
}

func newSession(s Session, ttl time.Duration, opened time.Time) *session {
	return &session{s: s, ttl: ttl, lastRenew: opened, terms: map[*term]struct{}{}, waiters: map[*term]struct{}{}}
}

// deadline returns the local time by which a claim covered by the session's
// last renewal must be treated as lost.
func (s *session) deadline(drift time.Duration) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastRenew.Add(s.ttl - drift)
}

func (s *session) lastRenewal() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastRenew
}

// renewed records a successful renewal sent at sent.
func (s *session) renewed(sent time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sent.After(s.lastRenew) {
		s.lastRenew = sent
	}
}

// track makes t's claim one the session renews.
func (s *session) track(t *term) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dead {
		s.terms[t] = struct{}{}
	}
}

// untrack stops renewing t's claim and forgets it as a waiter.
func (s *session) untrack(t *term) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.terms, t)
	delete(s.waiters, t)
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

// snapshot returns the terms whose claims a renewal covers.
func (s *session) snapshot() []*term {
	s.mu.Lock()
	defer s.mu.Unlock()
	terms := make([]*term, 0, len(s.terms))
	for t := range s.terms {
		terms = append(terms, t)
	}
	return terms
}

func (s *session) isDead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

// kill marks the session dead and returns the claims it carried; first
// reports whether this call killed it.
func (s *session) kill() (terms, waiters []*term, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return nil, nil, false
	}
	s.dead = true
	for t := range s.terms {
		terms = append(terms, t)
	}
	for t := range s.waiters {
		waiters = append(waiters, t)
	}
	s.terms, s.waiters = map[*term]struct{}{}, map[*term]struct{}{}
	return terms, waiters, true
}
