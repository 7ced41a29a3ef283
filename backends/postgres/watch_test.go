package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// A listening connection the server ends (pg_terminate_backend) ends every
// watch with an ErrUnavailable event; the Backend connects again, checks
// itself with its own NOTIFY, and a new watch sees the next claim.
func TestListenerReconnects(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, nil))
	ch, err := b.Watch(ctx, "relisten")
	if err != nil {
		t.Fatal(err)
	}
	<-ch
	srv.Exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' OR query = 'SELECT 1'`)
	ev, ok := <-ch
	if !ok || !errors.Is(ev.Err, election.ErrUnavailable) {
		t.Fatalf("event after the listener was terminated: %+v (open %v), want ErrUnavailable", ev, ok)
	}
	if _, ok := <-ch; ok {
		t.Fatal("the watch's channel stayed open after its error event")
	}
	for {
		ch, err = b.Watch(ctx, "relisten")
		if err == nil {
			break
		}
		if !errors.Is(err, election.ErrUnavailable) {
			t.Fatalf("Watch while reconnecting: %v, want ErrUnavailable", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the listener did not come back: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	<-ch
	s := openSession(t, ctx, b, 5*time.Second)
	c, err := s.Claim(ctx, request("relisten", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-ch; ev.Leader == nil || ev.Leader.Fence != c.Fence {
		t.Fatalf("event after the claim: %+v", ev)
	}
}

// An announcement is a hint, never a state: a forged release (any role
// that may connect can NOTIFY the channel) with a fence far above the
// real one makes the Backend read the election, so its watch shows no
// false vacancy, and the next true change, a claim in line promoted by
// the holder's release, still reaches it.
func TestForgedAnnouncementIsRead(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, nil))
	sa, sb := openSession(t, ctx, b, 10*time.Second), openSession(t, ctx, b, 10*time.Second)
	held, err := sa.Claim(ctx, request("forged", "a"))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := b.Watch(ctx, "forged")
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-ch; ev.Leader == nil || ev.Leader.ID != "a" {
		t.Fatalf("first event %+v, want a", ev)
	}
	srv.Exec(t, `SELECT pg_notify('public.election_events', '{"v":1,"kind":"release","name":"forged","fence":999999}');
SELECT pg_notify('public.election_events', '{"v":1,"kind":"claim","name":"forged","fence":999999}')`)
	queued, _, err := sb.(election.Queuer).Enqueue(ctx, request("forged", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sa.Release(ctx, held); err != nil {
		t.Fatal(err)
	}
	for {
		ev := <-ch
		switch {
		case ev.Err != nil:
			t.Fatalf("watch failed: %v", ev.Err)
		case ev.Leader == nil:
			t.Fatal("the watch showed the election vacant: a forged release was applied, or b's promotion was lost")
		case ev.Leader.ID == "b" && ev.Leader.Fence == queued.Fence:
			return
		case ev.Leader.ID != "a":
			t.Fatalf("event %+v, want a, then b promoted with fence %d", ev, queued.Fence)
		}
	}
}
