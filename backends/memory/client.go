package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/electionkit/election"
)

// Client is one connection to a [Store]; it implements election.Backend.
// Its link to the store can be cut and healed to simulate a partition,
// slowed with latency, and closed to simulate a crash.
type Client struct {
	store *Store

	// guarded by store.mu
	cut      bool
	closed   bool
	request  time.Duration // latency of each request on its way to the store
	response time.Duration // latency of each response and watch event on its way back
	mine     map[*watcher]struct{}
}

var _ election.Backend = (*Client)(nil)

// NewClient returns a new client of s.
func (s *Store) NewClient() *Client {
	return &Client{store: s, mine: map[*watcher]struct{}{}}
}

// Store returns the store the client talks to.
func (c *Client) Store() *Store { return c.store }

// Cut partitions the client from the store: its operations hang until their
// context ends (then fail with election.ErrUnavailable), responses on their
// way back are held until Heal, and its watches fail, losing the events
// still in flight. The store keeps every operation it already applied.
func (c *Client) Cut(ctx context.Context) error {
	s := c.store
	s.mu.Lock()
	defer s.mu.Unlock()
	c.cut = true
	s.signalLocked()
	for w := range c.mine {
		w.fail(fmt.Errorf("memory: link cut: %w", election.ErrUnavailable), true)
	}
	return nil
}

// Heal restores the client's link; responses held by the cut travel on.
func (c *Client) Heal(ctx context.Context) error {
	s := c.store
	s.mu.Lock()
	defer s.mu.Unlock()
	c.cut = false
	s.signalLocked()
	return nil
}

// SetLatency delays every later operation of the client by request on its
// way to the store and by response on its way back, and every watch event
// by response (events keep their order), measured on the store's clock.
// An operation whose context ends while its request is delayed fails with
// election.ErrUnavailable and was not applied; one whose context ends while
// its response is delayed fails with election.ErrUnavailable although the
// store applied it. Zero removes the delay. A negative latency is an error
// wrapping election.ErrInvalidArgument and changes nothing.
func (c *Client) SetLatency(request, response time.Duration) error {
	if request < 0 || response < 0 {
		return fmt.Errorf("%w: memory: latency: request %v, response %v: must not be negative",
			election.ErrInvalidArgument, request, response)
	}
	s := c.store
	s.mu.Lock()
	defer s.mu.Unlock()
	c.request, c.response = request, response
	return nil
}

// Close ends the client, as a crashed process would: nothing is released,
// operations fail, and watches end without the events still in flight. It
// is idempotent.
func (c *Client) Close() error {
	s := c.store
	s.mu.Lock()
	defer s.mu.Unlock()
	c.closed = true
	s.signalLocked()
	for w := range c.mine {
		w.fail(fmt.Errorf("memory: client closed: %w", election.ErrUnavailable), true)
	}
	return nil
}

// Limits reports the store's limits: TTLs from 1ms, names up to 256 bytes.
func (c *Client) Limits() election.Limits {
	return election.Limits{MinTTL: time.Millisecond, MaxNameLen: 256}
}

// call is the one path of an operation to the store and back: the request
// travels for the request latency, waits for the link and the store, apply
// runs with store.mu held, and the answer travels back for the response
// latency and waits for the link. An error of call's own wraps
// election.ErrUnavailable; once apply has run, such an error means the
// outcome is unknown to the caller although the store applied it.
func (c *Client) call(ctx context.Context, op string, apply func() error) error {
	s := c.store
	s.mu.Lock()
	delay := c.request
	s.mu.Unlock()
	if err := sleep(ctx, s.clock, delay); err != nil {
		return fmt.Errorf("memory: %s: request delayed: %w: %w", op, election.ErrUnavailable, err)
	}
	if err := c.enter(ctx, op); err != nil {
		return err
	}
	err := apply()
	delay = c.response
	s.mu.Unlock()
	if rerr := c.respond(ctx, op, delay); rerr != nil {
		return rerr
	}
	return err
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
		case s.state == StateDown:
			s.mu.Unlock()
			return fmt.Errorf("memory: %s: store down: %w", op, election.ErrUnavailable)
		case !c.cut && s.state == StateUp:
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

// respond carries an answer back: it waits delay, then for the link to be
// up. The store is not involved: it already answered.
func (c *Client) respond(ctx context.Context, op string, delay time.Duration) error {
	s := c.store
	if err := sleep(ctx, s.clock, delay); err != nil {
		return fmt.Errorf("memory: %s: response lost: %w: %w", op, election.ErrUnavailable, err)
	}
	for {
		s.mu.Lock()
		closed, cut, wait := c.closed, c.cut, s.changed
		s.mu.Unlock()
		switch {
		case closed:
			return fmt.Errorf("memory: %s: client closed, response lost: %w", op, election.ErrUnavailable)
		case !cut:
			return nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("memory: %s: response lost: %w: %w", op, election.ErrUnavailable, ctx.Err())
		}
	}
}

// sleep waits d on clk, or until ctx ends. Without a delay it returns at
// once, even for an ended context: an undelayed operation behaves as
// before latency existed.
func sleep(ctx context.Context, clk election.Clock, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	done := make(chan struct{})
	t := clk.AfterFunc(d, func() { close(done) })
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
}

// OpenSession starts a session with exactly the requested TTL: a lease
// (etcd mode) or a session (Consul mode) on the store, or, in Redis mode,
// only the TTL every claim of the session gets, after one round trip (the
// redis backend's PING). Errors: election.ErrInvalidArgument for a TTL
// below 1ms or a Store with an unknown Expiry, election.ErrUnavailable
// when the store cannot be reached.
func (c *Client) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	s := c.store
	if err := s.expiry.valid(); err != nil {
		return nil, err
	}
	if ttl < time.Millisecond {
		return nil, fmt.Errorf("%w: ttl: %v is below 1ms", election.ErrInvalidArgument, ttl)
	}
	sess := &session{client: c, ttl: ttl}
	err := c.call(ctx, "open session", func() error {
		if s.expiry == RedisExpiry {
			return nil
		}
		s.nextSess++
		ss := &storeSession{id: s.nextSess, ttl: ttl, keys: map[string]struct{}{}}
		s.sessions[ss.id] = ss
		s.renewSessionLocked(ss)
		sess.id = ss.id
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case s.expiry == EtcdExpiry:
		return &queueSession{sess}, nil
	}
	return sess, nil
}

// Leader returns the holder of name, or election.ErrNoLeader.
func (c *Client) Leader(ctx context.Context, name string) (election.Leader, error) {
	var l *election.Leader
	if err := c.call(ctx, "leader", func() error {
		l = c.store.stateLocked(name).Leader
		return nil
	}); err != nil {
		return election.Leader{}, err
	}
	if l == nil {
		return election.Leader{}, election.ErrNoLeader
	}
	return *l, nil
}
