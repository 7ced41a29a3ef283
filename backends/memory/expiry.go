package memory

import (
	"fmt"
	"strconv"
	"time"

	"github.com/electionkit/election"
)

// Expiry names the real store whose expiry a [Store] mimics; see the
// package documentation for what each mode does and does not mimic.
type Expiry int

const (
	// EtcdExpiry: claims belong to a session lease; an expired or closed
	// session drops its claims and watchers are told at once; sessions
	// implement [election.Queuer]. The default.
	EtcdExpiry Expiry = iota
	// RedisExpiry: each claim is a key with its own TTL, renewed per claim;
	// expiry is not pushed to watchers, who get the holder's remaining TTL
	// instead; Session.Close leaves claims to expire; a restart loses
	// every claim. No [election.Queuer].
	RedisExpiry
	// ConsulExpiry: claims belong to a session that the store invalidates
	// between TTL and 2×TTL after its last renewal, deleting its claims and
	// telling watchers. No [election.Queuer].
	ConsulExpiry
)

// String returns the mode's name as the memory:// URL's expiry parameter
// spells it: "etcd", "redis" or "consul".
func (e Expiry) String() string {
	switch e {
	case EtcdExpiry:
		return "etcd"
	case RedisExpiry:
		return "redis"
	case ConsulExpiry:
		return "consul"
	}
	return "Expiry(" + strconv.Itoa(int(e)) + ")"
}

// valid returns an error wrapping ErrInvalidArgument for an Expiry that is
// none of the constants.
func (e Expiry) valid() error {
	switch e {
	case EtcdExpiry, RedisExpiry, ConsulExpiry:
		return nil
	}
	return fmt.Errorf("%w: memory: unknown expiry mode %v", election.ErrInvalidArgument, e)
}

// parseExpiry reads the memory:// URL's expiry parameter.
func parseExpiry(v string) (Expiry, bool) {
	for _, e := range []Expiry{EtcdExpiry, RedisExpiry, ConsulExpiry} {
		if v == e.String() {
			return e, true
		}
	}
	return 0, false
}

// sessionLifeLocked is how long after a renewal (or its opening) the store
// keeps the session ss: its TTL in etcd mode, a time drawn between TTL and
// 2×TTL in Consul mode.
func (s *Store) sessionLifeLocked(ss *storeSession) time.Duration {
	if s.expiry == ConsulExpiry {
		return ss.ttl + time.Duration(s.rand.Int64N(int64(ss.ttl)+1))
	}
	return ss.ttl
}

// renewSessionLocked extends ss from now.
func (s *Store) renewSessionLocked(ss *storeSession) {
	ss.expires = s.clock.Now().Add(s.sessionLifeLocked(ss))
	s.armSessionLocked(ss)
}

// armSessionLocked schedules ss's expiry check at ss.expires.
func (s *Store) armSessionLocked(ss *storeSession) {
	stopTimer(&ss.timer)
	id := ss.id
	ss.timer = s.clock.AfterFunc(max(ss.expires.Sub(s.clock.Now()), 0), func() { s.sessionTimerFired(id) })
}

func (s *Store) sessionTimerFired(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[id]
	if !ok || s.state != StateUp {
		return // Resume and Start re-arm
	}
	if now := s.clock.Now(); now.Before(ss.expires) {
		s.armSessionLocked(ss) // renewed since this timer was set
		return
	}
	s.dropSessionLocked(ss, EndExpiry)
}

// dropSessionLocked ends ss: its claims in line leave, and the elections it
// holds end for reason (and pass to the next claim in line).
func (s *Store) dropSessionLocked(ss *storeSession, reason HoldEnd) {
	stopTimer(&ss.timer)
	delete(s.sessions, ss.id)
	for name, line := range s.lines {
		kept := line[:0]
		for _, e := range line {
			if e.sess != ss.id {
				kept = append(kept, e)
			}
		}
		s.setLineLocked(name, kept)
	}
	now := s.clock.Now()
	for name := range ss.keys {
		s.endTermLocked(name, reason, now)
	}
}

// armKeyLocked schedules the Redis-mode expiry of e at e.expires. Nothing
// is pushed when it fires: the timer only ends the term in the history
// and frees the key, which reads would find expired anyway.
func (s *Store) armKeyLocked(e *entry) {
	stopTimer(&e.timer)
	e.timer = s.clock.AfterFunc(max(e.expires.Sub(s.clock.Now()), 0), func() { s.keyTimerFired(e) })
}

func (s *Store) keyTimerFired(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys[e.req.Name] != e || s.state != StateUp {
		return // released, or Resume re-arms
	}
	if s.holderLocked(e.req.Name) == e {
		s.armKeyLocked(e) // renewed since this timer was set
	}
}

// expireDueLocked expires what ran out while the store was paused and
// re-arms the timers of the rest.
func (s *Store) expireDueLocked() {
	now := s.clock.Now()
	for _, ss := range s.sessions {
		if now.Before(ss.expires) {
			s.armSessionLocked(ss)
		} else {
			s.dropSessionLocked(ss, EndExpiry)
		}
	}
	if s.expiry != RedisExpiry {
		return
	}
	for name := range s.keys {
		if e := s.holderLocked(name); e != nil {
			s.armKeyLocked(e)
		}
	}
}
