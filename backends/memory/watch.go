package memory

import (
	"context"
	"sync"
	"time"

	"github.com/electionkit/election"
)

var _ election.Notifier = (*Client)(nil)

// Notify calls fn with the holder of name: first the state when the store
// registered the watch, then one event per claim and release and, in etcd
// and Consul modes, per expiry (Redis mode pushes no expiry; each event
// that shows a holder carries its remaining TTL in ExpiresIn). Events
// reach fn after the client's response latency, in order, one call at a
// time, from a timer: a watch has no goroutine of its own.
//
// ctx bounds the registration only; after stop fn is not called again.
// When the link is cut, the client closed or the store stopped, the last
// event has Err wrapping election.ErrUnavailable. Notify itself fails with
// election.ErrUnavailable when the store cannot be reached.
func (c *Client) Notify(ctx context.Context, name string, fn func(election.WatchEvent)) (stop func(), err error) {
	s := c.store
	var w *watcher
	err = c.call(ctx, "watch", func() error {
		w = &watcher{client: c, clock: s.clock, name: name, fn: fn}
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
			// Registered, but its answer was lost: nothing of it may
			// reach fn.
			w.mu.Lock()
			w.endLocked()
			w.mu.Unlock()
			c.unregister(name, w)
		}
		return nil, err
	}
	return w.cancel, nil
}

// Watch is Notify with a channel. The channel is closed when ctx ends, or
// after the event with Err.
func (c *Client) Watch(ctx context.Context, name string) (<-chan election.WatchEvent, error) {
	p := &pipe{wake: make(chan struct{}, 1)}
	stop, err := c.Notify(ctx, name, p.put)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, stop)
	out := make(chan election.WatchEvent)
	go p.run(ctx, out)
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
// latency. A timer delivers them.
type watcher struct {
	client *Client
	clock  election.Clock
	name   string
	fn     func(election.WatchEvent)

	mu         sync.Mutex
	queue      []delivery
	failed     bool // the error event is queued: nothing after it
	over       bool // stopped, or the error event was delivered
	delivering bool // a delivery is running (calls of fn never overlap)
	timer      election.Timer
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
	defer w.mu.Unlock()
	if !w.failed && !w.over {
		w.queue = append(w.queue, delivery{ev: ev, due: due})
		w.scheduleLocked()
	}
}

// fail queues a final error event, due now; nothing is queued after it.
// With lost (the link is gone), the events still in flight are dropped;
// otherwise the error follows them.
func (w *watcher) fail(err error, lost bool) {
	now := w.clock.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed || w.over {
		return
	}
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
	w.scheduleLocked()
}

// scheduleLocked arms the timer for the first queued event, unless a
// delivery is running (it schedules when it ends).
func (w *watcher) scheduleLocked() {
	if w.delivering || w.over || len(w.queue) == 0 {
		return
	}
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	wait := w.queue[0].due.Sub(w.clock.Now())
	if wait <= 0 {
		// Due now: a fake clock would not fire a timer of 0 until
		// someone advances it.
		go w.deliver()
		return
	}
	w.timer = w.clock.AfterFunc(wait, w.deliver)
}

// deliver calls fn with every event that is due, in order, then schedules
// the next.
func (w *watcher) deliver() {
	w.mu.Lock()
	if w.delivering || w.over {
		w.mu.Unlock()
		return
	}
	w.delivering = true
	ended := false
	for !w.over && len(w.queue) > 0 && !w.queue[0].due.After(w.clock.Now()) {
		d := w.queue[0]
		w.queue = w.queue[1:]
		w.mu.Unlock()
		w.fn(d.ev)
		w.mu.Lock()
		if d.ev.Err != nil {
			ended = w.endLocked()
		}
	}
	w.delivering = false
	w.scheduleLocked()
	w.mu.Unlock()
	if ended {
		w.client.unregister(w.name, w)
	}
}

// cancel ends the watch: Notify's stop.
func (w *watcher) cancel() {
	w.mu.Lock()
	ended := w.endLocked()
	w.mu.Unlock()
	if ended {
		w.client.unregister(w.name, w)
	}
}

// endLocked ends the watch: no event is delivered from now on. It reports
// whether the watch ended now; the caller then unregisters it, without
// w.mu (the store locks store.mu, then w.mu).
func (w *watcher) endLocked() bool {
	if w.over {
		return false
	}
	w.over, w.queue = true, nil
	if w.timer != nil {
		w.timer.Stop()
	}
	return true
}

// pipe turns Notify's calls into a channel: an unbounded queue and one
// goroutine that sends it in order.
type pipe struct {
	mu   sync.Mutex
	q    []election.WatchEvent
	wake chan struct{}
}

func (p *pipe) put(ev election.WatchEvent) {
	p.mu.Lock()
	p.q = append(p.q, ev)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pipe) run(ctx context.Context, out chan<- election.WatchEvent) {
	defer close(out)
	for {
		select {
		case <-p.wake:
		case <-ctx.Done():
			return
		}
		p.mu.Lock()
		q := p.q
		p.q = nil
		p.mu.Unlock()
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
	}
}
