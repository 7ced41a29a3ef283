// Package memory is a complete in-process election store: TTLs, owner
// tokens, fencing, watches, and fault controls (partition one client, pause,
// stop and start the store) for unit tests and examples.
//
// It is NOT for production: it lives in one process, so it cannot elect
// between processes.
//
// A [Store] behaves like etcd: claims belong to a session and live as long
// as it is renewed; an expired session drops its claims and watchers are
// told at once; a waiting candidate queues ([election.Queuer]) and holds
// the election as soon as the claims ahead of it end; data survives
// Stop/Start, and sessions get a fresh TTL when the store starts again (as
// etcd extends leases on a leader change).
// Fencing tokens come from a store-wide revision that never goes back.
package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/electionkit/election"
)

// Store is an in-process election store shared by its clients.
type Store struct {
	clock election.Clock

	mu       sync.Mutex
	rev      uint64 // last fencing token issued
	nextSess uint64
	sessions map[uint64]*storeSession
	keys     map[string]*entry   // holders, by election name
	lines    map[string][]*entry // claims waiting in line, by election, oldest first
	watchers map[string]map[*watcher]struct{}
	paused   bool
	down     bool
	changed  chan struct{} // closed and replaced on every fault change
}

type entry struct {
	req   election.ClaimRequest
	fence uint64
	sess  uint64
}

type storeSession struct {
	id      uint64
	ttl     time.Duration
	expires time.Time
	timer   election.Timer
	keys    map[string]struct{}
}

// Option configures a [Store].
type Option func(*Store)

// WithClock makes the store measure TTLs with c (default: the system clock),
// so tests can drive expiry with a fake clock.
func WithClock(c election.Clock) Option { return func(s *Store) { s.clock = c } }

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
	return s
}

// New returns a client of a new store: the one-line way to get a backend
// for a unit test or an example.
func New(opts ...Option) *Client { return NewStore(opts...).NewClient() }

// signalLocked wakes every operation waiting on a fault to clear.
func (s *Store) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Pause freezes the store, like SIGSTOP: operations block until Resume (or
// their context ends) and nothing expires meanwhile.
func (s *Store) Pause(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused = true
	s.signalLocked()
	return nil
}

// Resume continues a paused store; sessions whose TTL ran out during the
// pause expire at once.
func (s *Store) Resume(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused = false
	s.signalLocked()
	now := s.clock.Now()
	for _, ss := range s.sessions {
		s.armLocked(ss, ss.expires.Sub(now))
	}
	return nil
}

// Stop takes the store down: operations fail at once with
// election.ErrUnavailable and every watch ends with an error. Data is kept.
func (s *Store) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = true
	s.signalLocked()
	for _, ss := range s.sessions {
		if ss.timer != nil {
			ss.timer.Stop()
		}
	}
	for _, ws := range s.watchers {
		for w := range ws {
			w.fail(fmt.Errorf("memory: store stopped: %w", election.ErrUnavailable))
		}
	}
	return nil
}

// Start brings a stopped store back with its data; every session gets a
// fresh TTL from now.
func (s *Store) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = false
	s.signalLocked()
	now := s.clock.Now()
	for _, ss := range s.sessions {
		ss.expires = now.Add(ss.ttl)
		s.armLocked(ss, ss.ttl)
	}
	return nil
}

// armLocked schedules ss's expiry check after d.
func (s *Store) armLocked(ss *storeSession, d time.Duration) {
	if ss.timer != nil {
		ss.timer.Stop()
	}
	id := ss.id
	ss.timer = s.clock.AfterFunc(max(d, 0), func() { s.checkExpiry(id) })
}

func (s *Store) checkExpiry(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[id]
	if !ok || s.paused || s.down {
		return // Resume and Start re-arm
	}
	if now := s.clock.Now(); now.Before(ss.expires) {
		s.armLocked(ss, ss.expires.Sub(now))
		return
	}
	s.dropSessionLocked(ss)
}

func (s *Store) dropSessionLocked(ss *storeSession) {
	if ss.timer != nil {
		ss.timer.Stop()
	}
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
	for name := range ss.keys {
		s.endTermLocked(name)
	}
}

// endTermLocked removes the holder of name; the first claim in line, if
// any, holds the election from then on. Watchers are told once.
func (s *Store) endTermLocked(name string) {
	delete(s.keys, name)
	if line := s.lines[name]; len(line) > 0 {
		next := line[0]
		s.setLineLocked(name, line[1:])
		s.keys[name] = next
		s.sessions[next.sess].keys[name] = struct{}{}
	}
	s.notifyLocked(name)
}

func (s *Store) setLineLocked(name string, line []*entry) {
	if len(line) == 0 {
		delete(s.lines, name)
		return
	}
	s.lines[name] = line
}

// leaderLocked returns the holder of name, or nil.
func (s *Store) leaderLocked(name string) *election.Leader {
	e, ok := s.keys[name]
	if !ok {
		return nil
	}
	meta := make(map[string]string, len(e.req.Metadata))
	for k, v := range e.req.Metadata {
		meta[k] = v
	}
	return &election.Leader{Election: name, ID: e.req.ID, Metadata: meta, Fence: e.fence}
}

func (s *Store) notifyLocked(name string) {
	l := s.leaderLocked(name)
	for w := range s.watchers[name] {
		w.push(election.WatchEvent{Leader: l})
	}
}
