package election

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// alarm is a resettable one-shot timer on a Clock whose firing is a
// channel receive; set and stop make earlier firings void.
type alarm struct {
	clock Clock
	C     chan struct{}

	mu  sync.Mutex
	gen uint64
	t   Timer
}

func newAlarm(c Clock) *alarm { return &alarm{clock: c, C: make(chan struct{}, 1)} }

func (a *alarm) set(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.resetLocked()
	gen := a.gen
	a.t = a.clock.AfterFunc(d, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.gen == gen {
			select {
			case a.C <- struct{}{}:
			default:
			}
		}
	})
}

func (a *alarm) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.resetLocked()
}

func (a *alarm) resetLocked() {
	a.gen++
	if a.t != nil {
		a.t.Stop()
		a.t = nil
	}
	select {
	case <-a.C:
	default:
	}
}

// follow watches the election name and passes every event to emit until
// ctx ends or emit returns false. A failed watch is reported as an event
// with Err and re-established with backoff. When the store does not push
// expiry (WatchEvent.ExpiresIn set), the watch is re-established when the
// holder's TTL runs out, so its first event shows the state after expiry:
// a read timed at the TTL, never fixed-interval polling.
func (e *Elector) follow(ctx context.Context, name string, emit func(WatchEvent) bool) {
	failures := 0
	expiry := newAlarm(e.clock)
	defer expiry.stop()
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		ch, err := e.backend.Watch(wctx, name)
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return
			}
			failures++
			if !emit(WatchEvent{Err: fmt.Errorf("election: watch %q: %w", name, err)}) {
				return
			}
			if !sleep(ctx, e.clock, e.backoff(e.cfg.RetryMin, e.cfg.RetryMax, failures)) {
				return
			}
			continue
		}
		failed, ok := e.pump(ctx, ch, expiry, emit)
		cancel()
		for range ch {
			// Drain until the backend closes the channel for the
			// cancelled watch, so its goroutine can exit.
		}
		if !ok {
			return
		}
		if failed {
			failures++
			if !sleep(ctx, e.clock, e.backoff(e.cfg.RetryMin, e.cfg.RetryMax, failures)) {
				return
			}
		} else {
			failures = 0
		}
	}
}

// pump forwards one watch's events. It returns failed when the watch broke,
// and ok false when follow must end.
func (e *Elector) pump(ctx context.Context, ch <-chan WatchEvent, expiry *alarm, emit func(WatchEvent) bool) (failed, ok bool) {
	for {
		select {
		case <-ctx.Done():
			return false, false
		case <-expiry.C:
			return false, true // re-watch to see the state after expiry
		case ev, open := <-ch:
			if !open {
				if ctx.Err() != nil {
					return false, false
				}
				ev = WatchEvent{Err: fmt.Errorf("election: watch closed by backend: %w", ErrUnavailable)}
			}
			if ev.Err != nil {
				expiry.stop()
				return true, emit(ev)
			}
			if ev.Leader != nil && ev.ExpiresIn > 0 {
				expiry.set(ev.ExpiresIn + time.Millisecond)
			} else {
				expiry.stop()
			}
			if !emit(ev) {
				return false, false
			}
		}
	}
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
	out := make(chan Change)
	go func() {
		defer e.loops.Done()
		defer cancel()
		defer stop()
		defer close(out)
		var last *Leader
		first := true
		e.follow(ctx, name, func(ev WatchEvent) bool {
			if ev.Err != nil || (!first && sameLeader(last, ev.Leader)) {
				return true
			}
			first, last = false, ev.Leader
			select {
			case out <- Change{Leader: ev.Leader, Time: e.clock.Now()}:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	return out, nil
}
