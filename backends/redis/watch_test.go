package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/faultproxy"
)

// next returns the next event of ch, failing the test after a generous wait.
func next(t *testing.T, ch <-chan election.WatchEvent) election.WatchEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("watch channel closed, want an event")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("no watch event within 10s")
	}
	return election.WatchEvent{}
}

// closed waits for ch to close, failing after a generous wait; events still
// queued are returned.
func closed(t *testing.T, ch <-chan election.WatchEvent) []election.WatchEvent {
	t.Helper()
	var rest []election.WatchEvent
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return rest
			}
			rest = append(rest, ev)
		case <-timeout:
			t.Fatalf("watch channel not closed within 10s")
		}
	}
}

func TestWatchEvents(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	b := newBackend(t, srv.client(t), Config{Quarantine: 100 * time.Millisecond})
	ttl := 3 * time.Second
	s := openSession(t, ctx, b, ttl)

	wctx, cancel := context.WithCancel(ctx)
	ch, err := b.Watch(wctx, "watched")
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if ev := next(t, ch); ev.Err != nil || ev.Leader != nil || ev.ExpiresIn != 0 {
		t.Fatalf("first event on a vacant election = %+v, want vacant", ev)
	}
	req := request("watched", "a")
	req.Metadata = map[string]string{"role": "primary"}
	held := claim(t, ctx, s, req)
	ev := next(t, ch)
	if ev.Err != nil || ev.Leader == nil || ev.Leader.ID != "a" || ev.Leader.Fence != held.Fence ||
		ev.Leader.Election != "watched" || ev.Leader.Metadata["role"] != "primary" {
		t.Fatalf("event after claim = %+v, want a with fence %d", ev, held.Fence)
	}
	// The Backend reports expiry itself (a timer per holding session), so
	// the core needs no timer per election and never watches again.
	if ev.ExpiresIn != 0 {
		t.Errorf("claim event ExpiresIn = %v, want 0", ev.ExpiresIn)
	}

	// A second watch of the held election starts with the holder.
	ch2, err := b.Watch(wctx, "watched")
	if err != nil {
		t.Fatalf("second Watch: %v", err)
	}
	if ev := next(t, ch2); ev.Leader == nil || ev.Leader.Fence != held.Fence || ev.ExpiresIn != 0 {
		t.Fatalf("first event on a held election = %+v, want fence %d without ExpiresIn", ev, held.Fence)
	}

	if err := s.Release(ctx, held); err != nil {
		t.Fatalf("Release: %v", err)
	}
	for _, c := range []<-chan election.WatchEvent{ch, ch2} {
		if ev := next(t, c); ev.Err != nil || ev.Leader != nil {
			t.Fatalf("event after release = %+v, want vacant", ev)
		}
	}
	cancel()
	closed(t, ch)
	closed(t, ch2)
}

// pubsubClients returns the CLIENT LIST entries of pub/sub connections.
func pubsubClients(t *testing.T, ctx context.Context, admin *goredis.Client) []map[string]string {
	t.Helper()
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	var out []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		fields := map[string]string{}
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				fields[k] = v
			}
		}
		if strings.Contains(fields["flags"], "P") {
			out = append(out, fields)
		}
	}
	return out
}

// awaitResubscribed waits until b's hub has lost its subscription since it
// was at epoch (0: never), had it confirmed again and re-read every election
// it follows, and returns the hub's epoch then. The server lists a
// subscription as soon as the hub's confirmation arrives.
func awaitResubscribed(t *testing.T, ctx context.Context, b *Backend, epoch uint64) uint64 {
	t.Helper()
	h, err := b.currentHub()
	if err != nil {
		t.Fatalf("hub: %v", err)
	}
	for {
		h.mu.Lock()
		now, done := h.epoch, h.synced && !h.resyncing && (epoch == 0 || h.epoch > epoch)
		h.mu.Unlock()
		if done {
			return now
		}
		select {
		case <-ctx.Done():
			t.Fatalf("subscription not confirmed again after epoch %d (now %d): %v", epoch, now, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// All watches of a Backend share one connection subscribed to one channel,
// the prefix's: watching and unwatching elections subscribes nothing and
// unsubscribes nothing.
func TestWatchSharesOneSubscription(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 60*time.Second)
	admin := srv.client(t)
	b := newBackend(t, srv.client(t), Config{Quarantine: 100 * time.Millisecond})
	const elections = 50

	watchAll := func(wctx context.Context) []<-chan election.WatchEvent {
		var chans []<-chan election.WatchEvent
		for i := range elections {
			for range 2 { // two watchers per election
				ch, err := b.Watch(wctx, fmt.Sprintf("shared-%02d", i))
				if err != nil {
					t.Fatalf("Watch: %v", err)
				}
				next(t, ch)
				chans = append(chans, ch)
			}
		}
		return chans
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chans := watchAll(wctx)
	conns := pubsubClients(t, ctx, admin)
	if len(conns) != 1 || conns[0]["sub"] != "1" {
		t.Fatalf("pub/sub connections = %v, want one subscribed to one channel", conns)
	}

	// Every watcher still gets its own election's events, and only those.
	s := openSession(t, ctx, b, 5*time.Second)
	held := claim(t, ctx, s, request("shared-07", "a"))
	for i, ch := range chans {
		if i/2 != 7 {
			select {
			case ev := <-ch:
				t.Fatalf("watcher %d of shared-%02d got %+v after a claim of shared-07", i, i/2, ev)
			default:
			}
			continue
		}
		if ev := next(t, ch); ev.Leader == nil || ev.Leader.Fence != held.Fence {
			t.Fatalf("watcher %d of shared-07 got %+v", i, ev)
		}
	}

	// Watches end and begin again: no SUBSCRIBE or UNSUBSCRIBE.
	cancel()
	for _, ch := range chans {
		closed(t, ch)
	}
	wctx2, cancel2 := context.WithCancel(ctx)
	defer cancel2()
	watchAll(wctx2)
	stats := commandStats(t, ctx, admin)
	if stats["subscribe"] != 1 || stats["unsubscribe"] != 0 {
		t.Errorf("after %d watches, ended and made again: %d SUBSCRIBE, %d UNSUBSCRIBE; want 1 and 0",
			4*elections, stats["subscribe"], stats["unsubscribe"])
	}
}

// A quick restart of redis-server does not end a watch: go-redis
// reconnects, the subscription is confirmed again within two
// SubscriptionCheck periods, and the re-read that follows shows what the
// restart did (here: the term is gone with the data), then new terms.
func TestWatchSurvivesRestart(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 60*time.Second)
	// The restart must take less than two SubscriptionCheck periods.
	b := newBackend(t, srv.client(t), Config{NoQuarantine: true, SubscriptionCheck: 5 * time.Second})
	s := openSession(t, ctx, b, time.Minute)
	_, ch := claimWatched(t, ctx, b, s, "restarting", "a")
	srv.restart(t, ctx)
	if ev := next(t, ch); ev.Err != nil || ev.Leader != nil {
		t.Fatalf("event after the restart = %+v, want the vacancy the restart made", ev)
	}
	s2 := openSession(t, ctx, b, time.Minute)
	held := claim(t, ctx, s2, request("restarting", "b"))
	if ev := next(t, ch); ev.Err != nil || ev.Leader == nil || ev.Leader.Fence != held.Fence {
		t.Fatalf("event after a claim on the restarted server = %+v, want fence %d", ev, held.Fence)
	}
}

// A link that goes silent (no FIN, no answer) is found by the
// subscription's ping: every watch ends with one ErrUnavailable event (the
// core watches again, knowing it was blind meanwhile), and a watch made once
// the link works again shows the change made while it was cut.
func TestWatchFailsOnSilentLink(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 60*time.Second)
	proxy, err := faultproxy.New(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	check := 100 * time.Millisecond
	b := newBackend(t, srv.clientAt(t, proxy.Addr()), Config{SubscriptionCheck: check})
	direct := newBackend(t, srv.client(t), Config{NoQuarantine: true})
	ch, err := b.Watch(ctx, "silent")
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	next(t, ch)
	if err := proxy.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	held := claim(t, ctx, openSession(t, ctx, direct, time.Minute), request("silent", "a"))
	ev := next(t, ch)
	if !errors.Is(ev.Err, election.ErrUnavailable) {
		t.Fatalf("event after a cut = %+v, want Err wrapping ErrUnavailable", ev)
	}
	t.Logf("subscription declared broken %v after the cut (SubscriptionCheck %v)", time.Since(cut), check)
	if rest := closed(t, ch); len(rest) != 0 {
		t.Errorf("events after the error event: %v", rest)
	}
	if err := proxy.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	ch, err = b.Watch(ctx, "silent")
	if err != nil {
		t.Fatalf("Watch after the link healed: %v", err)
	}
	if ev := next(t, ch); ev.Err != nil || ev.Leader == nil || ev.Leader.Fence != held.Fence {
		t.Fatalf("first event after the link healed = %+v, want the claim made while it was cut (fence %d)", ev, held.Fence)
	}
}

// CLIENT KILL TYPE pubsub drops the one subscription every watch shares,
// while the elections change: go-redis reconnects at once, the re-read
// after the new confirmation makes up for the announcements lost, and each
// watch ends at its election's newest state; none misses a change. (Were
// the subscription down for longer than two SubscriptionCheck periods, the
// watches would end with ErrUnavailable and this test, like the core,
// watches again.)
func TestWatchRecoversFromKilledSubscription(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 120*time.Second)
	admin := srv.client(t)
	b := newBackend(t, srv.client(t), Config{NoQuarantine: true, SubscriptionCheck: 5 * time.Second})
	writer := newBackend(t, srv.client(t), Config{NoQuarantine: true})
	s := openSession(t, ctx, writer, time.Minute)
	const elections = 300
	chans := make([]<-chan election.WatchEvent, elections)
	for i := range chans {
		ch, err := b.Watch(ctx, fmt.Sprintf("kill-%03d", i))
		if err != nil {
			t.Fatal(err)
		}
		next(t, ch)
		chans[i] = ch
	}
	want := make([]uint64, elections) // newest fence; 0: vacant
	held := make([]election.Claim, elections)
	kills := 0
	// Both Backends' subscriptions (the writer's session keeps one too, for
	// its claims' announcements). Before a kill, each has been confirmed
	// and re-read since the one before: a kill while a Backend is still
	// resubscribing finds only the other's connection.
	backends := []*Backend{b, writer}
	epochs := make([]uint64, len(backends))
	for round := range 6 {
		for i, be := range backends {
			epochs[i] = awaitResubscribed(t, ctx, be, epochs[i])
		}
		if n, err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Result(); err != nil || n != 2 {
			t.Fatalf("CLIENT KILL TYPE pubsub = %d, %v; want 2 killed", n, err)
		}
		kills++
		// Change every election at once, while the subscriber reconnects.
		for i := range elections {
			name := fmt.Sprintf("kill-%03d", i)
			if want[i] != 0 {
				if err := s.Release(ctx, held[i]); err != nil {
					t.Fatal(err)
				}
				want[i] = 0
				continue
			}
			if (i+round)%3 == 0 {
				continue
			}
			c, err := s.Claim(ctx, request(name, fmt.Sprint("r", round)))
			if err != nil {
				t.Fatal(err)
			}
			held[i], want[i] = c, c.Fence
		}
	}
	// Each watch reaches its election's newest state.
	rewatched := 0
	for i, ch := range chans {
		for {
			ev := next(t, ch)
			if ev.Err != nil {
				closed(t, ch)
				var err error
				if ch, err = b.Watch(ctx, fmt.Sprintf("kill-%03d", i)); err != nil {
					t.Fatal(err)
				}
				rewatched++
				continue
			}
			var got uint64
			if ev.Leader != nil {
				got = ev.Leader.Fence
			}
			if got == want[i] {
				break
			}
		}
	}
	t.Logf("%d kills, %d watches of %d ended with ErrUnavailable and were made again", kills, rewatched, elections)
	for i, be := range backends {
		awaitResubscribed(t, ctx, be, epochs[i])
	}
	if n := len(pubsubClients(t, ctx, admin)); n != 2 {
		t.Errorf("%d pub/sub connections after %d kills, want 2 (one per Backend)", n, kills)
	}
}

func TestWatchEndsOnBackendClose(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	b, err := New(srv.client(t), Config{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := b.Watch(ctx, "closing")
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	next(t, ch)
	unread, err := b.Watch(ctx, "closing") // nobody reads its first event
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, ev := range closed(t, ch) {
		if !errors.Is(ev.Err, election.ErrUnavailable) {
			t.Errorf("event after Close = %+v, want Err wrapping ErrUnavailable", ev)
		}
	}
	closed(t, unread)
	if _, err := b.Watch(ctx, "closing"); !errors.Is(err, election.ErrUnavailable) {
		t.Errorf("Watch after Close = %v, want ErrUnavailable", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestWatchSlowReaderSeesNewestNeverOlder(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 60*time.Second)
	b := newBackend(t, srv.client(t), Config{Quarantine: 100 * time.Millisecond})
	s := openSession(t, ctx, b, 5*time.Second)
	ch, err := b.Watch(ctx, "busy")
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	// Twenty terms while nobody reads.
	var last election.Claim
	for i := range 20 {
		last = claim(t, ctx, s, request("busy", fmt.Sprint("c", i)))
		if i < 19 {
			if err := s.Release(ctx, last); err != nil {
				t.Fatal(err)
			}
		}
	}
	var prev uint64
	for {
		ev := next(t, ch)
		if ev.Err != nil {
			t.Fatalf("error event: %v", ev.Err)
		}
		var v uint64
		if ev.Leader != nil {
			v = claimVersion(ev.Leader.Fence)
		} else if prev > 0 {
			v = prev + 1 // a vacancy follows the term before it
		}
		if v < prev {
			t.Fatalf("event %+v goes back before version %d", ev, prev)
		}
		prev = v
		if ev.Leader != nil && ev.Leader.Fence == last.Fence {
			return // the newest state arrived
		}
	}
}
