package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	if ev.ExpiresIn <= 0 || ev.ExpiresIn > ttl {
		t.Errorf("claim event ExpiresIn = %v, want in (0, %v]", ev.ExpiresIn, ttl)
	}

	// A second watch of the held election starts with the holder and its PTTL.
	ch2, err := b.Watch(wctx, "watched")
	if err != nil {
		t.Fatalf("second Watch: %v", err)
	}
	if ev := next(t, ch2); ev.Leader == nil || ev.Leader.Fence != held.Fence || ev.ExpiresIn <= 0 || ev.ExpiresIn > ttl {
		t.Fatalf("first event on a held election = %+v, want fence %d with ExpiresIn in (0, %v]", ev, held.Fence, ttl)
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

func TestWatchSharesOneSubscription(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 60*time.Second)
	admin := srv.client(t)
	b := newBackend(t, srv.client(t), Config{Quarantine: 100 * time.Millisecond})
	const elections = 50

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var chans []<-chan election.WatchEvent
	for i := range elections {
		for range 2 { // two watchers per election share its channel too
			ch, err := b.Watch(wctx, fmt.Sprintf("shared-%02d", i))
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			next(t, ch)
			chans = append(chans, ch)
		}
	}
	conns := pubsubClients(t, ctx, admin)
	if len(conns) != 1 || conns[0]["sub"] != strconv.Itoa(elections) {
		t.Fatalf("pub/sub connections = %v, want one subscribed to %d channels", conns, elections)
	}

	// Every watcher still gets its own election's events.
	s := openSession(t, ctx, b, 5*time.Second)
	held := claim(t, ctx, s, request("shared-07", "a"))
	for i, ch := range chans {
		if i/2 != 7 {
			continue
		}
		if ev := next(t, ch); ev.Leader == nil || ev.Leader.Fence != held.Fence {
			t.Fatalf("watcher %d of shared-07 got %+v", i, ev)
		}
	}

	// Unsubscribed as the watchers go (a connection left with no channel
	// loses the P flag, so it drops out of the list).
	cancel()
	for _, ch := range chans {
		closed(t, ch)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conns = pubsubClients(t, ctx, admin)
		if len(conns) == 0 || (len(conns) == 1 && conns[0]["sub"] == "0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after every watch ended, pub/sub connections = %v, want no subscribed channel", conns)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWatchFailsOnRestart(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 60*time.Second)
	b := newBackend(t, srv.client(t), Config{})
	ch, err := b.Watch(ctx, "restarting")
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	next(t, ch)
	if err := srv.proc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	ev := next(t, ch)
	if !errors.Is(ev.Err, election.ErrUnavailable) {
		t.Fatalf("event after the server died = %+v, want Err wrapping ErrUnavailable", ev)
	}
	if rest := closed(t, ch); len(rest) != 0 {
		t.Errorf("events after the error event: %v", rest)
	}
	if _, err := b.Watch(ctx, "restarting"); !errors.Is(err, election.ErrUnavailable) {
		t.Errorf("Watch while the server is down = %v, want ErrUnavailable", err)
	}
	// Watching again works once the server is back (a new subscription).
	if err := srv.proc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ch, err = b.Watch(ctx, "restarting")
	if err != nil {
		t.Fatalf("Watch after restart: %v", err)
	}
	if ev := next(t, ch); ev.Err != nil || ev.Leader != nil {
		t.Errorf("first event after restart = %+v, want vacant", ev)
	}
}

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
	ch, err := b.Watch(ctx, "silent")
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	next(t, ch)
	if err := proxy.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	ev := next(t, ch)
	if !errors.Is(ev.Err, election.ErrUnavailable) {
		t.Fatalf("event after a cut = %+v, want Err wrapping ErrUnavailable", ev)
	}
	t.Logf("subscription declared broken %v after the cut (SubscriptionCheck %v)", time.Since(cut), check)
	closed(t, ch)
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
