package memory

import (
	"context"
	"sync"
	"time"

	"github.com/electionkit/election"
)

// Watch streams the holder of name; the first event is the state when the
// store registered the watch, then one event per claim and release and,
// in etcd and Consul modes, per expiry (Redis mode pushes no expiry; each
// event that shows a holder carries its remaining TTL in ExpiresIn).
// Events reach the reader after the client's response latency, in order.
//
// The channel is closed when ctx ends. When the link is cut, the client
// closed or the store stopped, the last event has Err wrapping
// election.ErrUnavailable. Watch itself fails with
// election.ErrUnavailable when the store cannot be reached.
func (c *Client) Watch(ctx context.Context, name string) (<-chan election.WatchEvent, error) {
	s := c.store
	var w *watcher
	err := c.call(ctx, "watch", func() error {
		w = &watcher{client: c, clock: s.clock, kick: make(chan struct{}, 1)}
		w.push(s.stateLocked(name))
		if s.watchers[name] == nil {
			s.watchers[name] = map[*watcher]struct{}{}
		}
		s.watchers[name][w] = struct{}{}
		c.mine[w] = struct{}{}
		return nil
	})
	if err != nil {
		if w != nil {
			c.unregister(name, w) // registered, but its answer was lost
		}
		return nil, err
	}
	out := make(chan election.WatchEvent)
	go func() {
		defer close(out)
		defer c.unregister(name, w)
		w.run(ctx, out)
	}()
	return out, nil
}

func (c *Client) unregister(name string, w *watcher) {
	s := c.store
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.watchers[name], w)
	if len(s.watchers[name]) == 0 {
		delete(s.watchers, name)
	}
	delete(c.mine, w)
}

// watcher queues events for one watch so the store never blocks on a slow
// reader, keeps their order and delays each by the client's response
// latency.
type watcher struct {
	client *Client
	clock  election.Clock
	kick   chan struct{} // capacity 1: "the queue changed"

	mu     sync.Mutex
	queue  []delivery
	failed bool
}

// delivery is an event on its way to the reader, due at the store time due.
type delivery struct {
	ev  election.WatchEvent
	due time.Time
}

// push queues ev, due after the client's response latency. The queue is
// delivered in order, so an event is never delivered before the ones
// queued ahead of it, whatever their latency. store.mu is held.
func (w *watcher) push(ev election.WatchEvent) {
	due := w.clock.Now().Add(w.client.response)
	w.mu.Lock()
	if !w.failed {
		w.queue = append(w.queue, delivery{ev: ev, due: due})
	}
	w.mu.Unlock()
	w.poke()
}

// fail queues a final error event, due now; nothing is queued after it.
// With lost (the link is gone), the events still in flight are dropped;
// otherwise the error follows them.
func (w *watcher) fail(err error, lost bool) {
	now := w.clock.Now()
	w.mu.Lock()
	if !w.failed {
		w.failed = true
		if lost {
			kept := w.queue[:0]
			for _, d := range w.queue {
				if !d.due.After(now) {
					kept = append(kept, d)
				}
			}
			w.queue = kept
		}
		w.queue = append(w.queue, delivery{ev: election.WatchEvent{Err: err}, due: now})
	}
	w.mu.Unlock()
	w.poke()
}

func (w *watcher) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// take pops the first event if it is due. Otherwise it reports how long
// until it is (zero for an empty queue).
func (w *watcher) take() (d delivery, wait time.Duration, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return delivery{}, 0, false
	}
	if wait := w.queue[0].due.Sub(w.clock.Now()); wait > 0 {
		return delivery{}, wait, false
	}
	d, w.queue = w.queue[0], w.queue[1:]
	return d, 0, true
}

// run delivers events until ctx ends or the error event is delivered.
func (w *watcher) run(ctx context.Context, out chan<- election.WatchEvent) {
	for {
		d, wait, ok := w.take()
		if !ok {
			if !w.idle(ctx, wait) {
				return
			}
			continue
		}
		select {
		case out <- d.ev:
		case <-ctx.Done():
			return
		}
		if d.ev.Err != nil {
			return
		}
	}
}

// idle waits for the queue to change or, when wait is positive, for wait
// to pass on the store's clock. It reports false when ctx ended.
func (w *watcher) idle(ctx context.Context, wait time.Duration) bool {
	var due <-chan struct{}
	if wait > 0 {
		ch := make(chan struct{})
		t := w.clock.AfterFunc(wait, func() { close(ch) })
		defer t.Stop()
		due = ch
	}
	select {
	case <-w.kick:
	case <-due:
	case <-ctx.Done():
		return false
	}
	return true
}
