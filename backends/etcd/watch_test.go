package etcd_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
)

// TestWatchOrder: the first event is the state when the watch starts; then
// one event per claim, release and revoke, in order; the channel closes
// when the context ends.
func TestWatchOrder(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}})
	sa, sb := openSession(t, b, time.Second), openSession(t, b, time.Second)

	watchCtx, stop := context.WithCancel(ctx)
	defer stop()
	events, err := b.Watch(watchCtx, "watched")
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	expect := func(want string) {
		t.Helper()
		if got := holder(nextEvent(t, events)); got != want {
			t.Fatalf("watch event = %s, want %s", got, want)
		}
	}
	expect("vacant")
	// Read after each change: a reader that keeps up sees every change, in
	// order (a slow one gets the newest state, see TestWatchCoalesces).
	a := claim(t, sa, "watched", "a")
	expect(holder(election.WatchEvent{Leader: &election.Leader{ID: "a", Fence: a.Fence}}))
	if err := sa.Release(ctx, a); err != nil {
		t.Fatal(err)
	}
	expect("vacant")
	bc := claim(t, sb, "watched", "b")
	expect(holder(election.WatchEvent{Leader: &election.Leader{ID: "b", Fence: bc.Fence}}))
	if err := sb.Close(ctx); err != nil {
		t.Fatal(err)
	}
	expect("vacant") // lease revoked by Close
	a2 := claim(t, sa, "watched", "a")
	expect(holder(election.WatchEvent{Leader: &election.Leader{ID: "a", Fence: a2.Fence}}))
	if !(a.Fence < bc.Fence && bc.Fence < a2.Fence) {
		t.Fatalf("fences %d, %d, %d do not increase", a.Fence, bc.Fence, a2.Fence)
	}

	// A second watch starts from the current holder.
	second, err := b.Watch(watchCtx, "watched")
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, second); ev.Leader == nil || ev.Leader.ID != "a" || ev.Leader.Fence != a2.Fence || ev.Leader.Election != "watched" {
		t.Fatalf("first event of a watch on a held election = %s", holder(ev))
	}

	stop()
	for _, ch := range []<-chan election.WatchEvent{events, second} {
		select {
		case ev, ok := <-ch:
			if ok {
				t.Fatalf("event after the context ended: %s", holder(ev))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watch channel not closed 10s after its context ended")
		}
	}
}

// TestWatchEndsOnClose: closing the Backend ends its watches with an error
// wrapping ErrUnavailable, then closes the channel.
func TestWatchEndsOnClose(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	b, err := etcd.New(etcd.Config{Endpoints: []string{srv.addr}})
	if err != nil {
		t.Fatal(err)
	}
	events, err := b.Watch(testCtx(t), "closing")
	if err != nil {
		t.Fatal(err)
	}
	nextEvent(t, events)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, events)
	if !errors.Is(ev.Err, election.ErrUnavailable) {
		t.Fatalf("event after Close = %s, want an error wrapping ErrUnavailable", holder(ev))
	}
	if _, ok := <-events; ok {
		t.Fatalf("channel still open after the error event")
	}
}

// TestExpiry: an unrenewed claim disappears no earlier than the TTL after
// its last renewal was sent, and watchers are told. It logs how long after
// the TTL etcd took (the lessor checks every 500ms and revokes through
// raft), which the conformance harness's ExpiryLag must cover.
func TestExpiry(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	owner := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}})
	observer := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}})
	for round := range 3 {
		s := openSession(t, owner, time.Second)
		held := claim(t, s, "expiry", "a")
		events, err := observer.Watch(ctx, "expiry")
		if err != nil {
			t.Fatal(err)
		}
		if ev := nextEvent(t, events); ev.Leader == nil || ev.Leader.Fence != held.Fence {
			t.Fatalf("first event %s, want the holder", holder(ev))
		}
		sent := time.Now()
		if err := s.Renew(ctx, []election.Claim{held}); err != nil {
			t.Fatal(err)
		}
		ev := nextEvent(t, events)
		gone := time.Since(sent)
		if ev.Err != nil || ev.Leader != nil {
			t.Fatalf("event after expiry = %s, want vacant", holder(ev))
		}
		if gone < s.TTL() {
			t.Fatalf("claim expired %v after its last renewal, before its TTL %v", gone, s.TTL())
		}
		if gone > s.TTL()+5*time.Second {
			t.Fatalf("claim expired %v after its last renewal, over TTL + 5s", gone)
		}
		t.Logf("round %d: TTL %v, watchers saw the expiry %v after the last renewal was sent (lag %v)",
			round, s.TTL(), gone.Round(time.Millisecond), (gone - s.TTL()).Round(time.Millisecond))
		if err := s.Renew(ctx, []election.Claim{held}); !errors.Is(err, election.ErrSessionExpired) {
			t.Fatalf("Renew after expiry = %v, want ErrSessionExpired", err)
		}
	}
}

// TestFenceAcrossRestart: fences (create revisions) strictly increase from
// term to term, and keep increasing after the etcd process is killed and
// started again on its data directory.
func TestFenceAcrossRestart(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}})
	var last uint64
	terms := func(n int) {
		t.Helper()
		s := openSession(t, b, 2*time.Second)
		for range n {
			c := claim(t, s, "fenced", "a")
			if c.Fence <= last {
				t.Fatalf("fence %d after %d: not increasing", c.Fence, last)
			}
			last = c.Fence
			if err := s.Release(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	terms(5)
	// A claim held across the restart keeps its fence: etcd persisted it.
	s := openSession(t, b, 10*time.Second)
	held := claim(t, s, "held-across", "a")
	before := last

	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The client reconnects by itself; the first calls may still fail.
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := b.Leader(ctx, "held-across")
		if err == nil {
			if l.Fence != held.Fence {
				t.Fatalf("fence of a claim held across the restart changed: %d → %d", held.Fence, l.Fence)
			}
			break
		}
		if !errors.Is(err, election.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Leader after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	terms(5)
	if last <= before || last <= held.Fence {
		t.Fatalf("fences after restart (%d) not above those before (%d, %d)", last, before, held.Fence)
	}
}
