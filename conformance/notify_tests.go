package conformance

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/electionkit/election"
)

// notifyLog records the calls of one Notify callback and whether any two
// overlapped.
type notifyLog struct {
	inCall  atomic.Int32
	overlap atomic.Bool

	mu     sync.Mutex
	events []election.WatchEvent
	wake   chan struct{}
}

func newNotifyLog() *notifyLog { return &notifyLog{wake: make(chan struct{}, 1)} }

func (l *notifyLog) fn(ev election.WatchEvent) {
	if l.inCall.Add(1) > 1 {
		l.overlap.Store(true)
	}
	time.Sleep(time.Millisecond) // widen the window in which a second call would overlap
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
	l.inCall.Add(-1)
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *notifyLog) snapshot() []election.WatchEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]election.WatchEvent(nil), l.events...)
}

// await waits until the log holds an event at index i or later that
// satisfies ok, and returns its index.
func (e *env) await(l *notifyLog, from int, what string, ok func(election.WatchEvent) bool) int {
	e.t.Helper()
	return e.awaitWithin(l, from, e.timing.TTL+e.timing.takeover()+5*time.Second, what, ok)
}

func (e *env) awaitWithin(l *notifyLog, from int, within time.Duration, what string, ok func(election.WatchEvent) bool) int {
	e.t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		evs := l.snapshot()
		for i := from; i < len(evs); i++ {
			if ok(evs[i]) {
				return i
			}
		}
		select {
		case <-l.wake:
		case <-deadline.C:
			e.t.Fatalf("watch: no event %s; got %+v", what, evs[from:])
		case <-e.ctx.Done():
			e.t.Fatalf("watch: %v waiting for an event %s", e.ctx.Err(), what)
		}
	}
}

// watchFunc is how the suite watches the raw backend: election.Notifier's
// Notify when the harness declares it, otherwise Watch with a goroutine
// that calls fn for each event of the channel. Either way the watch ends
// when ctx ends (for Notify, by calling its stop function then); ended is
// closed when that goroutine has seen the channel closed (for Notify, when
// stop has returned).
func (e *env) watchFunc(b election.Backend, ctx context.Context, name string, fn func(election.WatchEvent)) (ended <-chan struct{}, err error) {
	done := make(chan struct{})
	if e.caps.Notify {
		stop, err := b.(election.Notifier).Notify(ctx, name, fn)
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() {
			stop()
			close(done)
		})
		return done, nil
	}
	ch, err := b.Watch(ctx, name)
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(done)
		for ev := range ch {
			fn(ev)
		}
	}()
	return done, nil
}

// testNotify checks the watch contract on the raw Backend, through
// election.Notifier when the backend has it and through Watch otherwise:
// the first event shows the state when the watch was established, then
// claims and releases in the store's order; calls never overlap; a cut
// link ends the watch with one Err event and nothing after it; after ctx
// ends nothing comes (a channel is closed).
func testNotify(e *env) {
	a, w := e.newNode("a"), e.newNode("w")
	via := "Watch"
	if e.caps.Notify {
		via = "Notify"
	}
	const name = "notify"
	sa := e.openSession(a, e.timing.TTL)

	// Vacant, then claimed, then released: in order.
	l := newNotifyLog()
	ctx, cancel := context.WithCancel(e.ctx)
	ended, err := e.watchFunc(w.b, ctx, name, l.fn)
	if err != nil {
		e.t.Fatalf("%s = %v", via, err)
	}
	first := e.await(l, 0, "for the initial state", func(election.WatchEvent) bool { return true })
	if ev := l.snapshot()[first]; ev.Err != nil || ev.Leader != nil {
		e.t.Fatalf("%s: first event %+v, want the vacant election", via, ev)
	}
	held := e.mustClaim(sa, name, "token-notify-a-0123456789", "a")
	at := e.await(l, first+1, "showing a's claim", func(ev election.WatchEvent) bool {
		return ev.Leader != nil && ev.Leader.Fence == held.Fence && ev.Leader.ID == "a"
	})
	if err := sa.Release(e.ctx, held); err != nil {
		e.t.Fatalf("Release = %v", err)
	}
	e.await(l, at+1, "showing the release", func(ev election.WatchEvent) bool { return ev.Err == nil && ev.Leader == nil })
	for _, ev := range l.snapshot() {
		if ev.Err != nil {
			e.t.Fatalf("%s: unexpected Err event %v", via, ev.Err)
		}
	}

	if e.caps.Notify {
		// Notify's ctx bounds the set-up only: a watch whose ctx ends
		// once Notify has returned follows the election until stop.
		sl := newNotifyLog()
		sctx, scancel := context.WithCancel(e.ctx)
		stop, err := w.b.(election.Notifier).Notify(sctx, name, sl.fn)
		scancel()
		if err != nil {
			e.t.Fatalf("Notify = %v", err)
		}
		e.await(sl, 0, "for the initial state", func(election.WatchEvent) bool { return true })
		c := e.mustClaim(sa, name, "token-notify-a-setupctx01", "a")
		at := e.await(sl, 0, "showing a claim made after Notify's ctx ended", func(ev election.WatchEvent) bool {
			return ev.Leader != nil && ev.Leader.Fence == c.Fence
		})
		if err := sa.Release(e.ctx, c); err != nil {
			e.t.Fatalf("Release = %v", err)
		}
		e.await(sl, at+1, "showing the release", func(ev election.WatchEvent) bool { return ev.Err == nil && ev.Leader == nil })
		stop()
		stop() // a second stop is harmless
	}

	// After ctx ends (for Notify, once stop has returned): no change made
	// afterwards is shown (a call already in progress may still finish);
	// a channel is closed and carries nothing more.
	cancel()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		e.t.Fatalf("%s: the watch did not end within 5s of its ctx", via)
	}
	before := len(l.snapshot())
	again := e.mustClaim(sa, name, "token-notify-a-abcdefghij", "a")
	e.wantHolder(a, name, "a", again.Fence, "after the second claim")
	time.Sleep(e.timing.TTL / 2) // long enough for a push to arrive
	after := l.snapshot()[before:]
	for _, ev := range after {
		if ev.Leader != nil && ev.Leader.Fence == again.Fence {
			e.t.Fatalf("%s: showed a claim made after its ctx ended: %+v", via, ev)
		}
	}
	if !e.caps.Notify && len(after) > 0 {
		e.t.Fatalf("%s: %d events after its channel closed: %+v", via, len(after), after)
	}

	// A cut link: one Err event, then nothing. Noticing the cut may take
	// several TTLs: a's session is renewed meanwhile, so that the release
	// below is a's own.
	rctx, stopRenew := context.WithCancel(e.ctx)
	defer stopRenew()
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		tick := time.NewTicker(e.timing.TTL / 4)
		defer tick.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-tick.C:
				_ = sa.Renew(rctx, []election.Claim{again})
			}
		}
	}()
	cut := newNotifyLog()
	cctx, ccancel := context.WithCancel(e.ctx)
	defer ccancel()
	if _, err := e.watchFunc(w.b, cctx, name, cut.fn); err != nil {
		e.t.Fatalf("%s = %v", via, err)
	}
	e.await(cut, 0, "for the initial state", func(election.WatchEvent) bool { return true })
	if err := w.link.Cut(e.ctx); err != nil {
		e.t.Fatalf("Cut: %v", err)
	}
	// A cut is silent: the backend notices it by its own liveness checks
	// (keepalives, a query's timeout), which may take a while.
	errAt := e.awaitWithin(cut, 0, 4*e.timing.TTL+time.Minute, "with Err after the link was cut",
		func(ev election.WatchEvent) bool { return ev.Err != nil })
	if ev := cut.snapshot()[errAt]; !errors.Is(ev.Err, election.ErrUnavailable) {
		e.t.Fatalf("Err event %v does not wrap ErrUnavailable", ev.Err)
	}
	if err := w.link.Heal(e.ctx); err != nil {
		e.t.Fatalf("Heal: %v", err)
	}
	stopRenew()
	<-renewed
	if err := sa.Release(e.ctx, again); err != nil {
		e.t.Fatalf("Release = %v", err)
	}
	time.Sleep(e.timing.TTL / 2)
	if evs := cut.snapshot(); len(evs) != errAt+1 {
		e.t.Fatalf("%s: events after its Err event: %+v", via, evs[errAt+1:])
	}
	if l.overlap.Load() || cut.overlap.Load() {
		e.t.Fatalf("%s: two calls of one watch's callback overlapped", via)
	}
}
