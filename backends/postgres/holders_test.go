package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// The watches of many elections held by one session cost one timer, and
// its expiry one read of them all (holders.go): a Backend watches 300
// elections one session holds, half of them with a claim of another
// session waiting in line, and the holder stops renewing. No event carries
// ExpiresIn; the Backend keeps one holder timer; after the TTL (never
// before: the server's expiry is at least the session's open plus its TTL)
// every watch shows its election vacant, or held by the claim that waited
// (promoted by that read), after one read of expired elections.
func TestHolderExpiryOneTimer(t *testing.T) {
	const n = 300
	srv := startServer(t)
	ctx := testContext(t, 2*time.Minute)
	holderB := newBackend(t, ctx, serverURL(srv.Addr, nil))
	watcherB := newBackend(t, ctx, serverURL(srv.Addr, nil))
	const ttl = 2 * time.Second
	opened := time.Now()
	holder := openSession(t, ctx, holderB, ttl)
	// The holder renews until every watch is set up, however long that
	// takes; its expiry is then at least its last renewal's send + TTL.
	stopRenewing := renewUntil(t, holder, opened)
	waiter := openSession(t, ctx, holderB, time.Minute).(election.Queuer)
	queued := map[string]uint64{}
	for i := range n {
		name := fmt.Sprintf("e%03d", i)
		if _, err := holder.Claim(ctx, request(name, "holder")); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			c, h, err := waiter.Enqueue(ctx, request(name, "waiter"))
			if err != nil || h == nil {
				t.Fatalf("Enqueue(%s): %v, holder %v", name, err, h)
			}
			queued[name] = c.Fence
		}
	}
	reads := expiryReads.Load()
	var (
		mu    sync.Mutex
		after = map[string]election.WatchEvent{} // the first event after the holder's
		when  = map[string]time.Time{}
		done  = make(chan struct{})
	)
	for i := range n {
		name := fmt.Sprintf("e%03d", i)
		first := true
		stop, err := watcherB.Notify(ctx, name, func(ev election.WatchEvent) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case ev.Err != nil:
				t.Errorf("%s: watch failed: %v", name, ev.Err)
			case ev.ExpiresIn != 0:
				t.Errorf("%s: event with ExpiresIn %v: the Backend reports expiry itself", name, ev.ExpiresIn)
			case first:
				first = false
				if ev.Leader == nil || ev.Leader.ID != "holder" {
					t.Errorf("%s: first event %+v, want the holder", name, ev)
				}
			default:
				if _, ok := after[name]; !ok {
					after[name], when[name] = ev, time.Now()
					if len(after) == n {
						close(done)
					}
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	}
	watcherB.hub.mu.Lock()
	timers, held := watcherB.hub.holders.Len(), watcherB.hub.holders.Elections()
	watcherB.hub.mu.Unlock()
	if timers != 1 || held != n {
		t.Fatalf("holder timers: %d holding %d elections; want 1 holding %d", timers, held, n)
	}
	from := stopRenewing()
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("%d of %d watches reported the holder's expiry", len(after), n)
	}
	mu.Lock()
	defer mu.Unlock()
	for name, ev := range after {
		if when[name].Before(from.Add(ttl)) {
			t.Errorf("%s: expiry reported %v after the last renewal was sent, before its TTL %v", name, when[name].Sub(from), ttl)
		}
		switch fence, ok := queued[name]; {
		case ok && (ev.Leader == nil || ev.Leader.ID != "waiter" || ev.Leader.Fence != fence):
			t.Errorf("%s: after the holder's expiry %+v, want the waiting claim (fence %d)", name, ev.Leader, fence)
		case !ok && ev.Leader != nil:
			t.Errorf("%s: after the holder's expiry %+v, want vacant", name, ev.Leader)
		}
	}
	if got := expiryReads.Load() - reads; got != 1 {
		t.Errorf("%d reads of an expired holder's elections, want 1", got)
	}
	t.Logf("expiry of one holder of %d watched elections: reported %v after its TTL by %d read(s)",
		n, time.Since(from.Add(ttl)).Round(time.Millisecond), expiryReads.Load()-reads)
}

// renewUntil renews s every third of its TTL from a goroutine until the
// returned stop is called; stop returns the send time of the last renewal
// that succeeded (or from, when none did).
func renewUntil(t *testing.T, s election.Session, from time.Time) (stop func() time.Time) {
	t.Helper()
	var (
		mu   sync.Mutex
		sent = from
	)
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(s.TTL() / 3)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			at := time.Now()
			if err := s.Renew(context.Background(), nil); err != nil {
				t.Errorf("renewal: %v", err)
				return
			}
			mu.Lock()
			sent = at
			mu.Unlock()
		}
	}()
	var once sync.Once
	stop = func() time.Time {
		once.Do(func() { close(quit); <-exited })
		mu.Lock()
		defer mu.Unlock()
		return sent
	}
	t.Cleanup(func() { stop() })
	return stop
}
