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
