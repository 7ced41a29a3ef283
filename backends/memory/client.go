package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/electionkit/election"
)

// Client is one connection to a [Store]; it implements election.Backend.
// Its link to the store can be cut and healed to simulate a partition, and
// closed to simulate a crash.
type Client struct {
	store *Store

	// guarded by store.mu
	cut    bool
	closed bool
	mine   map[*watcher]struct{}
}

var _ election.Backend = (*Client)(nil)

// NewClient returns a new client of s.
func (s *Store) NewClient() *Client {
	return &Client{store: s, mine: map[*watcher]struct{}{}}
}

// Store returns the store the client talks to.
func (c *Client) Store() *Store { return c.store }

// Cut partitions the client from the store: its operations hang until their
// context ends (then fail with election.ErrUnavailable) and its watches fail.
func (c *Client) Cut(ctx context.Context) error {
	s := c.store
	s.mu.Lock()
	defer s.mu.Unlock()
	c.cut = true
	s.signalLocked()
	for w := range c.mine {
		w.fail(fmt.Errorf("memory: link cut: %w", election.ErrUnavailable))
	}
	return nil
}

// Heal restores the client's link.
func (c *Client) Heal(ctx context.Context) error {
	s := c.store
	s.mu.Lock()
	defer s.mu.Unlock()
	c.cut = false
	s.signalLocked()
	return nil
}

// Close ends the client, as a crashed process would: nothing is released,
// operations fail and watches end. It is idempotent.
func (c *Client) Close() error {
	s := c.store
	s.mu.Lock()
	defer s.mu.Unlock()
	c.closed = true
	s.signalLocked()
	for w := range c.mine {
		w.fail(fmt.Errorf("memory: client closed: %w", election.ErrUnavailable))
	}
	return nil
}

// Limits reports the store's limits: TTLs from 1ms, names up to 256 bytes.
func (c *Client) Limits() election.Limits {
	return election.Limits{MinTTL: time.Millisecond, MaxNameLen: 256}
}

// enter waits until the client may reach the store and returns with
// store.mu held, or returns an error wrapping election.ErrUnavailable.
func (c *Client) enter(ctx context.Context, op string) error {
	s := c.store
	for {
		s.mu.Lock()
		switch {
		case c.closed:
			s.mu.Unlock()
			return fmt.Errorf("memory: %s: client closed: %w", op, election.ErrUnavailable)
		case s.down:
			s.mu.Unlock()
			return fmt.Errorf("memory: %s: store down: %w", op, election.ErrUnavailable)
		case !c.cut && !s.paused:
			return nil
		}
		wait := s.changed
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("memory: %s: %w: %w", op, election.ErrUnavailable, ctx.Err())
		}
	}
}

// OpenSession starts a session with exactly the requested TTL.
func (c *Client) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	if ttl < time.Millisecond {
		return nil, fmt.Errorf("%w: ttl: %v is below 1ms", election.ErrInvalidArgument, ttl)
	}
	if err := c.enter(ctx, "open session"); err != nil {
		return nil, err
	}
	s := c.store
	defer s.mu.Unlock()
	s.nextSess++
	ss := &storeSession{id: s.nextSess, ttl: ttl, expires: s.clock.Now().Add(ttl), keys: map[string]struct{}{}}
	s.sessions[ss.id] = ss
	s.armLocked(ss, ttl)
	return &session{client: c, id: ss.id, ttl: ttl}, nil
}

// Leader returns the holder of name, or election.ErrNoLeader.
func (c *Client) Leader(ctx context.Context, name string) (election.Leader, error) {
	if err := c.enter(ctx, "leader"); err != nil {
		return election.Leader{}, err
	}
	defer c.store.mu.Unlock()
	l := c.store.leaderLocked(name)
	if l == nil {
		return election.Leader{}, election.ErrNoLeader
	}
	return *l, nil
}

// Watch streams the holder of name; the first event is the current state.
func (c *Client) Watch(ctx context.Context, name string) (<-chan election.WatchEvent, error) {
	if err := c.enter(ctx, "watch"); err != nil {
		return nil, err
	}
	s := c.store
	w := newWatcher()
	w.push(election.WatchEvent{Leader: s.leaderLocked(name)})
	if s.watchers[name] == nil {
		s.watchers[name] = map[*watcher]struct{}{}
	}
	s.watchers[name][w] = struct{}{}
	c.mine[w] = struct{}{}
	s.mu.Unlock()

	out := make(chan election.WatchEvent)
	go func() {
		defer close(out)
		defer func() {
			s.mu.Lock()
			delete(s.watchers[name], w)
			if len(s.watchers[name]) == 0 {
				delete(s.watchers, name)
			}
			delete(c.mine, w)
			s.mu.Unlock()
		}()
		w.run(ctx, out)
	}()
	return out, nil
}

// watcher queues events for one watch so the store never blocks on a slow
// reader and order is kept.
type watcher struct {
	mu     sync.Mutex
	queue  []election.WatchEvent
	failed bool
	kick   chan struct{}
}

func newWatcher() *watcher { return &watcher{kick: make(chan struct{}, 1)} }

func (w *watcher) push(ev election.WatchEvent) {
	w.mu.Lock()
	if !w.failed {
		w.queue = append(w.queue, ev)
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// fail queues a final error event; nothing is queued after it.
func (w *watcher) fail(err error) {
	w.mu.Lock()
	if !w.failed {
		w.queue = append(w.queue, election.WatchEvent{Err: err})
		w.failed = true
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *watcher) run(ctx context.Context, out chan<- election.WatchEvent) {
	for {
		w.mu.Lock()
		q := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, ev := range q {
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
			if ev.Err != nil {
				return
			}
		}
		select {
		case <-w.kick:
		case <-ctx.Done():
			return
		}
	}
}
