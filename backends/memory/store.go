package memory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/electionkit/election"
)

// Store is an in-process election store shared by its clients. Make one
// with [NewStore]; it is safe for concurrent use.
type Store struct {
	clock  election.Clock
	expiry Expiry

	mu       sync.Mutex
	rand     *rand.Rand // draws happen under mu, in the order the store applies operations
	state    State
	rev      uint64 // last fencing token issued
	nextSess uint64
	sessions map[uint64]*storeSession // etcd and Consul modes only
	keys     map[string]*entry        // holders, by election name
	lines    map[string][]*entry      // claims waiting in line, by election, oldest first
	watchers map[string]map[*watcher]struct{}
	changed  chan struct{} // closed and replaced on every fault change
	// started is when the store last started after losing its data
	// (Redis mode); claims are quarantined for a TTL from then.
	started time.Time
	holds   []Hold
	outages []Outage
}

// entry is one claim: holding its election, or waiting in line for it.
type entry struct {
	req   election.ClaimRequest
	fence uint64
	sess  uint64 // owning session (etcd and Consul modes)
	hold  int    // index in Store.holds while held, -1 while in line

	// Redis mode: the key's own expiry.
	expires time.Time
	timer   election.Timer
}

// storeSession is a session on the store (etcd lease, Consul session).
type storeSession struct {
	id      uint64
	ttl     time.Duration
	expires time.Time
	timer   election.Timer
	keys    map[string]struct{}
}

// Option configures a [Store].
type Option func(*Store)

// WithClock makes the store measure TTLs, latencies and history with c
// (default: [election.SystemClock]), so tests can drive expiry with a fake
// clock.
func WithClock(c election.Clock) Option { return func(s *Store) { s.clock = c } }

// WithExpiry makes the store expire claims like the store e names (default
// [EtcdExpiry]); see the package documentation. An Expiry other than the
// package's constants makes every OpenSession fail with an error wrapping
// [election.ErrInvalidArgument].
func WithExpiry(e Expiry) Option { return func(s *Store) { s.expiry = e } }

// WithRand makes the store draw its random choices (the Consul-like
// invalidation time) from src, so that a seeded simulation replays
// exactly. The default source is seeded randomly. The store uses src only
// while holding its lock; src must not be shared with other users.
func WithRand(src rand.Source) Option { return func(s *Store) { s.rand = rand.New(src) } }

// NewStore returns an empty, running store.
func NewStore(opts ...Option) *Store {
	s := &Store{
		clock:    election.SystemClock(),
		sessions: map[uint64]*storeSession{},
		keys:     map[string]*entry{},
		lines:    map[string][]*entry{},
		watchers: map[string]map[*watcher]struct{}{},
		changed:  make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	if s.rand == nil {
		s.rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return s
}

// New returns a client of a new store: the one-line way to get a backend
// for a unit test or an example.
func New(opts ...Option) *Client { return NewStore(opts...).NewClient() }

// Expiry returns the store's expiry mode.
func (s *Store) Expiry() Expiry { return s.expiry }

// signalLocked wakes every operation waiting on a fault to clear.
func (s *Store) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Pause freezes the store, like SIGSTOP: operations block until Resume (or
// their context ends) and nothing expires meanwhile. Pausing a paused store
// does nothing; pausing a stopped one fails.
func (s *Store) Pause(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case StateDown:
		return errors.New("memory: pause: the store is stopped")
	case StatePaused:
		return nil
	}
	s.setStateLocked(StatePaused)
	return nil
}

// Resume continues a paused store; claims and sessions whose TTL ran out
// during the pause expire at once. Resuming a running store does nothing;
// resuming a stopped one fails.
func (s *Store) Resume(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case StateDown:
		return errors.New("memory: resume: the store is stopped")
	case StateUp:
		return nil
	}
	s.setStateLocked(StateUp)
	s.expireDueLocked()
	return nil
}

// Stop kills the store, like SIGKILL, paused or not: operations fail at
// once with election.ErrUnavailable and every watch ends with an error.
// Data is kept, except in [RedisExpiry] mode, where every claim is lost.
// Stopping a stopped store does nothing.
func (s *Store) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == StateDown {
		return nil
	}
	s.setStateLocked(StateDown)
	for _, ss := range s.sessions {
		stopTimer(&ss.timer)
	}
	if s.expiry == RedisExpiry {
		s.loseDataLocked()
	}
	for _, ws := range s.watchers {
		for w := range ws {
			w.fail(fmt.Errorf("memory: store stopped: %w", election.ErrUnavailable), false)
		}
	}
	return nil
}

// Start brings a stopped store back with its data: in [EtcdExpiry] mode
// every session gets a fresh TTL from now, in [ConsulExpiry] mode 2×TTL, and
// in [RedisExpiry] mode (which lost its data) claims are quarantined for the
// claiming session's TTL. Starting a running store does nothing.
func (s *Store) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != StateDown {
		return nil
	}
	s.setStateLocked(StateUp)
	now := s.clock.Now()
	if s.expiry == RedisExpiry {
		s.started = now
	}
	for _, ss := range s.sessions {
		ttl := ss.ttl
		if s.expiry == ConsulExpiry {
			ttl = 2 * ss.ttl
		}
		ss.expires = now.Add(ttl)
		s.armSessionLocked(ss)
	}
	return nil
}

// loseDataLocked forgets every claim, as a store without persistence does
// when it dies.
func (s *Store) loseDataLocked() {
	now := s.clock.Now()
	for name, e := range s.keys {
		stopTimer(&e.timer)
		s.endHoldLocked(e, EndRestartLoss, now)
		delete(s.keys, name)
	}
}

// endTermLocked removes the holder of name, whose term ended for reason
// at the store time at; the first claim in line, if any, holds the election
// from then on. Watchers are told once.
func (s *Store) endTermLocked(name string, reason HoldEnd, at time.Time) {
	if e, ok := s.keys[name]; ok {
		stopTimer(&e.timer)
		s.endHoldLocked(e, reason, at)
		delete(s.keys, name)
		if ss, ok := s.sessions[e.sess]; ok {
			delete(ss.keys, name)
		}
	}
	if line := s.lines[name]; len(line) > 0 {
		next := line[0]
		s.setLineLocked(name, line[1:])
		s.holdLocked(next, at) // the same write ends one term and starts the next
	}
	s.notifyLocked(name)
}

// holdLocked makes e the holder of its election from the store time at.
func (s *Store) holdLocked(e *entry, at time.Time) {
	name := e.req.Name
	s.keys[name] = e
	if ss, ok := s.sessions[e.sess]; ok {
		ss.keys[name] = struct{}{}
	}
	s.startHoldLocked(e, at)
}

func (s *Store) setLineLocked(name string, line []*entry) {
	if len(line) == 0 {
		delete(s.lines, name)
		return
	}
	s.lines[name] = line
}

// holderLocked returns the claim holding name, or nil. In Redis mode a key
// whose TTL ran out is gone, whether or not its timer has fired yet, and
// watchers are not told.
func (s *Store) holderLocked(name string) *entry {
	e, ok := s.keys[name]
	if !ok {
		return nil
	}
	if s.expiry == RedisExpiry && !s.clock.Now().Before(e.expires) {
		stopTimer(&e.timer)
		s.endHoldLocked(e, EndExpiry, e.expires)
		delete(s.keys, name)
		return nil
	}
	return e
}

// leader returns the public view of e.
func (e *entry) leader() *election.Leader {
	meta := make(map[string]string, len(e.req.Metadata))
	for k, v := range e.req.Metadata {
		meta[k] = v
	}
	return &election.Leader{Election: e.req.Name, ID: e.req.ID, Metadata: meta, Fence: e.fence}
}

// stateLocked returns what a watch or a read shows of name: its holder and,
// in Redis mode, the holder's remaining TTL.
func (s *Store) stateLocked(name string) election.WatchEvent {
	e := s.holderLocked(name)
	if e == nil {
		return election.WatchEvent{}
	}
	ev := election.WatchEvent{Leader: e.leader()}
	if s.expiry == RedisExpiry {
		ev.ExpiresIn = e.expires.Sub(s.clock.Now())
	}
	return ev
}

func (s *Store) notifyLocked(name string) {
	ev := s.stateLocked(name)
	for w := range s.watchers[name] {
		w.push(ev)
	}
}

func stopTimer(t *election.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}
