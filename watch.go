package election

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// follower keeps one watch of an election established and hands its events
// to emit, for as long as it runs. A failed watch is reported as an event
// with Err and re-established with backoff. When the store does not push
// expiry (WatchEvent.ExpiresIn set), the watch is re-established when the
// holder's TTL runs out, so its first event shows the state after expiry:
// a read timed at the TTL, never fixed-interval polling. A candidate's own
// claim needs no such timer: its renewals tell it whether it still holds.
//
// A follower has no goroutine while it waits: events arrive through the
// backend's [Notifier] (or, for a backend without one, a goroutine that
// reads the channel of [Backend.Watch]), and re-watching is a timer.
// Setting up a watch, which does I/O, runs in a short-lived goroutine.
type follower struct {
	el   *Elector
	name string
	// emit receives the events in order; it is called with mu held, so it
	// must not block or call back into the follower.
	emit func(WatchEvent)
	// own reports whether l is the follower's own claim (nil: never).
	own func(l *Leader) bool

	mu  sync.Mutex
	gen uint64 // the current watch; events of older ones are dropped
	// cancel ends the current watch: while it is being set up, by ending
	// the set-up's context; once established, by the backend's stop.
	cancel   func()
	timer    Timer
	failures int
	ended    bool
	inflight sync.WaitGroup // watch set-ups and channel readers
}

func (e *Elector) newFollower(name string, emit func(WatchEvent), own func(*Leader) bool) *follower {
	return &follower{el: e, name: name, emit: emit, own: own}
}

// start establishes the first watch.
func (f *follower) start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rewatchLocked()
}

// stop ends the watch and waits until no goroutine of the follower is
// left; emit is not called after stop returns.
func (f *follower) stop() {
	f.mu.Lock()
	f.ended = true
	f.endWatchLocked()
	f.mu.Unlock()
	f.inflight.Wait()
}

func (f *follower) endWatchLocked() {
	f.gen++
	if f.cancel != nil {
		f.cancel()
		f.cancel = nil
	}
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
}

// rewatchLocked replaces the current watch with a new one.
func (f *follower) rewatchLocked() {
	if f.ended {
		return
	}
	f.endWatchLocked()
	gen := f.gen
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.inflight.Add(1)
	go func() {
		defer f.inflight.Done()
		stop, err := f.el.watch(ctx, f.name, func(ev WatchEvent) { f.event(gen, ev) }, &f.inflight)
		if err != nil {
			cancel()
			f.event(gen, WatchEvent{Err: fmt.Errorf("election: watch %q: %w", f.name, err)})
			return
		}
		if stop == nil {
			return // a channel watch, which lasts as long as ctx
		}
		// The watch no longer needs ctx: drop it, so that an established
		// watch keeps no context alive.
		cancel()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.gen != gen {
			stop() // ended or replaced while it was set up
			return
		}
		f.cancel = stop
	}()
}

// afterLocked re-watches after d, unless the watch changes first.
func (f *follower) afterLocked(d time.Duration) {
	if f.timer != nil {
		f.timer.Stop()
	}
	gen := f.gen
	f.timer = f.el.clock.AfterFunc(d, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.gen == gen {
			f.rewatchLocked()
		}
	})
}

// event takes one event of watch gen.
func (f *follower) event(gen uint64, ev WatchEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended || gen != f.gen {
		return
	}
	if ev.Err != nil {
		// The watch is over: no more of its events count.
		f.endWatchLocked()
		f.failures++
		f.emit(ev)
		f.afterLocked(f.el.backoff(f.el.cfg.RetryMin, f.el.cfg.RetryMax, f.failures))
		return
	}
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	if ev.Leader != nil && ev.ExpiresIn > 0 && (f.own == nil || !f.own(ev.Leader)) {
		f.failures = 0 // the watch ends by design, not by failure
		f.afterLocked(ev.ExpiresIn + time.Millisecond)
	}
	f.emit(ev)
}

// watch establishes one watch of name that calls fn with its events:
// through the backend's Notifier, whose stop function it returns, or
// through Watch and a goroutine, counted in wg, that reads the channel;
// such a watch lasts as long as ctx, and stop is nil. A channel the
// backend closes while ctx is live counts as a failure.
func (e *Elector) watch(ctx context.Context, name string, fn func(WatchEvent), wg *sync.WaitGroup) (stop func(), err error) {
	if n, ok := e.backend.(Notifier); ok {
		return n.Notify(ctx, name, fn)
	}
	ch, err := e.backend.Watch(ctx, name)
	if err != nil {
		return nil, err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		failed := false
		for ev := range ch {
			failed = failed || ev.Err != nil
			fn(ev)
		}
		if !failed && ctx.Err() == nil {
			fn(WatchEvent{Err: fmt.Errorf("election: watch closed by backend: %w", ErrUnavailable)})
		}
	}()
	return nil, nil
}

// Change is one step in the history of an election as seen by an observer.
type Change struct {
	// Leader is the new holder, or nil when the election became vacant.
	Leader *Leader
	// Time is when the change was seen, on the elector's clock.
	Time time.Time
}

// Observe follows the election name without campaigning: the channel yields
// the current state first, then every change, in the store's order, with
// the leader's identity, metadata and fencing token. Repeated views of the
// same term are not repeated. Watch failures are retried with backoff and
// not reported on the channel (use a candidate's events or OnEvent for
// those). The channel is closed when ctx ends or the elector shuts down; a
// slow reader delays the observer but loses nothing. It returns
// ErrInvalidArgument for a bad name and ErrStopped after Close.
func (e *Elector) Observe(ctx context.Context, name string) (<-chan Change, error) {
	if err := ValidateName(e.backend, name); err != nil {
		return nil, err
	}
	e.mu.Lock()
	closing := e.closing
	if !closing {
		e.loops.Add(1)
	}
	e.mu.Unlock()
	if closing {
		return nil, fmt.Errorf("%w: observe %q: elector closed", ErrStopped, name)
	}
	// The observer ends with ctx or with the elector, whichever is first.
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(e.life, cancel)
	var q changeQueue
	q.wake = make(chan struct{}, 1)
	f := e.newFollower(name, func(ev WatchEvent) {
		if ev.Err == nil {
			q.put(Change{Leader: ev.Leader, Time: e.clock.Now()})
		}
	}, nil)
	out := make(chan Change)
	f.start()
	go func() {
		defer e.loops.Done()
		defer cancel()
		defer stop()
		defer close(out)
		defer f.stop()
		var last *Leader
		first := true
		for {
			select {
			case <-q.wake:
			case <-ctx.Done():
				return
			}
			for _, ch := range q.takeAll() {
				if !first && sameLeader(last, ch.Leader) {
					continue
				}
				first, last = false, ch.Leader
				select {
				case out <- ch:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// changeQueue is an unbounded queue of changes for an observer, so that
// the watch never waits for a slow reader and the reader loses nothing.
type changeQueue struct {
	mu   sync.Mutex
	q    []Change
	wake chan struct{} // capacity 1: "the queue is not empty"
}

func (q *changeQueue) put(c Change) {
	q.mu.Lock()
	q.q = append(q.q, c)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *changeQueue) takeAll() []Change {
	q.mu.Lock()
	defer q.mu.Unlock()
	all := q.q
	q.q = nil
	return all
}
