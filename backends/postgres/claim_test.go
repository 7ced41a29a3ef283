package postgres

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// The basic path on a real server: claim, taken, renew, release, a new
// term with a greater fence, and a watch that sees each step.
func TestClaimRenewRelease(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, nil))
	s1 := openSession(t, ctx, b, 5*time.Second)
	s2 := openSession(t, ctx, b, 5*time.Second)
	ch, err := b.Watch(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-ch; ev.Leader != nil || ev.Err != nil {
		t.Fatalf("first event %+v, want vacant", ev)
	}
	c1, err := s1.Claim(ctx, election.ClaimRequest{Name: "orders", Token: "t1", ID: "a", Metadata: map[string]string{"zone": "eu"}})
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-ch; ev.Leader == nil || ev.Leader.Fence != c1.Fence || ev.Leader.ID != "a" || ev.Leader.Metadata["zone"] != "eu" || ev.ExpiresIn != 0 {
		t.Fatalf("event after claim %+v", ev)
	}
	_, err = s2.Claim(ctx, election.ClaimRequest{Name: "orders", Token: "t2", ID: "b"})
	var taken *election.TakenError
	if !errors.As(err, &taken) || taken.Holder.ID != "a" || taken.Holder.Fence != c1.Fence {
		t.Fatalf("second claim: %v", err)
	}
	if err := s1.Renew(ctx, []election.Claim{c1}); err != nil {
		t.Fatal(err)
	}
	if err := s2.Release(ctx, election.Claim{Name: "orders", Token: "t2"}); !errors.Is(err, election.ErrNotOwner) {
		t.Fatalf("release with another token: %v", err)
	}
	if err := s1.Release(ctx, c1); err != nil {
		t.Fatal(err)
	}
	if ev := <-ch; ev.Leader != nil {
		t.Fatalf("event after release %+v", ev)
	}
	if err := s1.Renew(ctx, []election.Claim{c1}); !errors.Is(err, election.ErrNotOwner) {
		t.Fatalf("renew of a released claim: %v", err)
	}
	c2, err := s2.Claim(ctx, election.ClaimRequest{Name: "orders", Token: "t2", ID: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if c2.Fence <= c1.Fence {
		t.Fatalf("fence %d after %d", c2.Fence, c1.Fence)
	}
	if ev := <-ch; ev.Leader == nil || ev.Leader.Fence != c2.Fence {
		t.Fatalf("event after second claim %+v", ev)
	}
}

// Renewals run on a connection of their own: with every connection of a
// one-connection pool taken, a renewal still goes through.
func TestRenewWhilePoolBusy(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, url.Values{"pool_max_conns": {"1"}}))
	s := openSession(t, ctx, b, 2*time.Second)
	c, err := s.Claim(ctx, request("busy", "a"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	renewCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Renew(renewCtx, []election.Claim{c}); err != nil {
		t.Fatalf("renew with the pool taken: %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if _, err := b.Leader(short, "busy"); err == nil {
		t.Fatal("a read went through a pool whose one connection is taken: the test holds nothing")
	}
}

// A session whose TTL has passed by the server's clock is not renewed:
// the renewal is refused with ErrSessionExpired, even though no one took
// its claims, and the claims are vacant to readers.
func TestRenewRefusesExpiredSession(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, nil))
	s := openSession(t, ctx, b, 50*time.Millisecond)
	c, err := s.Claim(ctx, request("late", "a"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := b.Leader(ctx, "late"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("Leader after the session expired: %v, want ErrNoLeader", err)
	}
	if err := s.Renew(ctx, []election.Claim{c}); !errors.Is(err, election.ErrSessionExpired) {
		t.Fatalf("renew after the TTL: %v, want ErrSessionExpired", err)
	}
}

// OpenSession deletes the rows of sessions that expired over a minute ago
// (electors that crashed), and no other.
func TestOpenSessionCollectsExpiredSessions(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, nil))
	srv.Exec(t, `INSERT INTO public.election_sessions (id, expires_at, ttl_us, format) VALUES
('crashed', clock_timestamp() - interval '2 minutes', 1000000, 1),
('recent', clock_timestamp() - interval '1 second', 1000000, 1)`)
	openSession(t, ctx, b, time.Second)
	var left []string
	rows, err := b.pool.Query(ctx, `SELECT id FROM public.election_sessions WHERE id IN ('crashed', 'recent')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		left = append(left, id)
	}
	if len(left) != 1 || left[0] != "recent" {
		t.Fatalf("sessions left %v, want [recent]", left)
	}
}
