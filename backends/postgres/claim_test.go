package postgres

import (
	"errors"
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
	if ev := <-ch; ev.Leader == nil || ev.Leader.Fence != c1.Fence || ev.Leader.ID != "a" || ev.Leader.Metadata["zone"] != "eu" || ev.ExpiresIn <= 0 {
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
