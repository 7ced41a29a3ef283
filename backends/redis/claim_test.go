package redis

import (
	"errors"
	"testing"
	"time"

	"github.com/electionkit/election"
)

func TestClaimIsExclusive(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	a := newBackend(t, srv.client(t), Config{Quarantine: 100 * time.Millisecond})
	b := newBackend(t, srv.client(t), Config{Quarantine: 100 * time.Millisecond})
	ttl := 2 * time.Second
	sa, sb := openSession(t, ctx, a, ttl), openSession(t, ctx, b, ttl)

	reqA := request("exclusive", "a")
	reqA.Metadata = map[string]string{"addr": "10.0.0.1:80", "quote": `"{}:%`}
	held := claim(t, ctx, sa, reqA)
	if held.Fence == 0 || held.Name != "exclusive" || held.Token != reqA.Token {
		t.Fatalf("Claim = %+v", held)
	}
	_, err := sb.Claim(ctx, request("exclusive", "b"))
	var taken *election.TakenError
	if !errors.As(err, &taken) || !errors.Is(err, election.ErrTaken) {
		t.Fatalf("second Claim = %v, want *TakenError", err)
	}
	if taken.Holder.ID != "a" || taken.Holder.Fence != held.Fence || taken.Holder.Metadata["quote"] != `"{}:%` {
		t.Errorf("TakenError.Holder = %+v, want a with fence %d and its metadata", taken.Holder, held.Fence)
	}
	if taken.ExpiresIn <= 0 || taken.ExpiresIn > ttl {
		t.Errorf("TakenError.ExpiresIn = %v, want in (0, %v]", taken.ExpiresIn, ttl)
	}
	// The same owner claiming again is refused too: a claim never extends.
	if _, err := sa.Claim(ctx, reqA); !errors.Is(err, election.ErrTaken) {
		t.Errorf("re-Claim by the holder = %v, want ErrTaken", err)
	}
	l, err := b.Leader(ctx, "exclusive")
	if err != nil || l.ID != "a" || l.Fence != held.Fence || l.Election != "exclusive" || l.Metadata["addr"] != "10.0.0.1:80" {
		t.Errorf("Leader = %+v, %v", l, err)
	}
}

func TestRenewKeepsClaim(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	b := newBackend(t, srv.client(t), Config{})
	ttl := 500 * time.Millisecond
	s := openSession(t, ctx, b, ttl)
	held := claim(t, ctx, s, request("renewed", "a"))

	// Renew for four TTLs; the claim must survive throughout.
	end := time.Now().Add(4 * ttl)
	for time.Now().Before(end) {
		if err := s.Renew(ctx, []election.Claim{held}); err != nil {
			t.Fatalf("Renew: %v", err)
		}
		time.Sleep(ttl / 4)
	}
	l, err := b.Leader(ctx, "renewed")
	if err != nil || l.Fence != held.Fence {
		t.Fatalf("after renewing for 4 TTLs, Leader = %+v, %v; want fence %d", l, err, held.Fence)
	}
	ms, err := srv.client(t).PTTL(ctx, keysFor(DefaultPrefix, "renewed").leader).Result()
	if err != nil || ms <= 0 || ms > ttl {
		t.Errorf("PTTL after renew = %v, %v; want in (0, %v]", ms, err, ttl)
	}
}

func TestWrongTokenChangesNothing(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	raw := srv.client(t)
	b := newBackend(t, raw, Config{Quarantine: 100 * time.Millisecond}) // not about the quarantine: keep it short
	ttl := 5 * time.Second
	s := openSession(t, ctx, b, ttl)
	held := claim(t, ctx, s, request("tokens", "a"))
	key := keysFor(DefaultPrefix, "tokens").leader

	// Let the TTL run down a little, so a renew would be visible.
	time.Sleep(300 * time.Millisecond)
	before, err := raw.Get(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	ttlBefore, _ := raw.PTTL(ctx, key).Result()

	forged := election.Claim{Name: "tokens", Token: "forged-token", Fence: held.Fence}
	err = s.Renew(ctx, []election.Claim{forged})
	var notOwner *election.NotOwnerError
	if !errors.As(err, &notOwner) || len(notOwner.Claims) != 1 || notOwner.Claims[0] != forged {
		t.Errorf("Renew with a wrong token = %v, want *NotOwnerError listing it", err)
	}
	if err := s.Release(ctx, forged); !errors.Is(err, election.ErrNotOwner) {
		t.Errorf("Release with a wrong token = %v, want ErrNotOwner", err)
	}
	vacant := election.Claim{Name: "never-claimed", Token: held.Token}
	if err := s.Renew(ctx, []election.Claim{vacant}); !errors.Is(err, election.ErrNotOwner) {
		t.Errorf("Renew of a vacant election = %v, want ErrNotOwner", err)
	}
	if err := s.Release(ctx, vacant); !errors.Is(err, election.ErrNotOwner) {
		t.Errorf("Release of a vacant election = %v, want ErrNotOwner", err)
	}

	after, err := raw.Get(ctx, key).Result()
	if err != nil || after != before {
		t.Errorf("stored value changed by forged calls")
	}
	if ttlAfter, _ := raw.PTTL(ctx, key).Result(); ttlAfter > ttlBefore {
		t.Errorf("forged renew extended the claim: PTTL %v → %v", ttlBefore, ttlAfter)
	}
	if exists, _ := raw.Exists(ctx, keysFor(DefaultPrefix, "never-claimed").leader).Result(); exists != 0 {
		t.Errorf("renew of a vacant election created its key")
	}
	if err := s.Release(ctx, held); err != nil {
		t.Errorf("owner's Release: %v", err)
	}
	if _, err := b.Leader(ctx, "tokens"); !errors.Is(err, election.ErrNoLeader) {
		t.Errorf("after release, Leader = %v, want ErrNoLeader", err)
	}
}

func TestClaimExpires(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	b := newBackend(t, srv.client(t), Config{})
	ttl := 300 * time.Millisecond
	sa, sb := openSession(t, ctx, b, ttl), openSession(t, ctx, b, ttl)
	first := claim(t, ctx, sa, request("expiring", "a"))
	claimed := time.Now()

	// b learns when to try from ExpiresIn, as the core does.
	var second election.Claim
	for {
		c, err := sb.Claim(ctx, request("expiring", "b"))
		if err == nil {
			second = c
			break
		}
		var taken *election.TakenError
		if !errors.As(err, &taken) || taken.ExpiresIn <= 0 {
			t.Fatalf("Claim while held = %v, want TakenError with ExpiresIn", err)
		}
		time.Sleep(taken.ExpiresIn + time.Millisecond)
	}
	if elapsed := time.Since(claimed); elapsed < ttl-50*time.Millisecond {
		t.Errorf("b claimed %v after a's claim, before its TTL %v", elapsed, ttl)
	}
	if second.Fence <= first.Fence {
		t.Errorf("fence after expiry %d, not above %d", second.Fence, first.Fence)
	}
	if err := sa.Renew(ctx, []election.Claim{first}); !errors.Is(err, election.ErrNotOwner) {
		t.Errorf("Renew of the expired claim = %v, want ErrNotOwner", err)
	}
}

func TestSessionClosed(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	b := newBackend(t, srv.client(t), Config{NoQuarantine: true})
	s := openSession(t, ctx, b, time.Second)
	held := claim(t, ctx, s, request("closing", "a"))
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Claim(ctx, request("other", "a")); !errors.Is(err, election.ErrSessionExpired) {
		t.Errorf("Claim after Close = %v, want ErrSessionExpired", err)
	}
	if err := s.Renew(ctx, []election.Claim{held}); !errors.Is(err, election.ErrSessionExpired) {
		t.Errorf("Renew after Close = %v, want ErrSessionExpired", err)
	}
	// The claim itself is left to expire (or to be released by token).
	if l, err := b.Leader(ctx, "closing"); err != nil || l.Fence != held.Fence {
		t.Errorf("claim gone right after session Close: %+v, %v", l, err)
	}
	if err := s.Release(ctx, held); err != nil {
		t.Errorf("Release after Close: %v", err)
	}
}

func TestOwnerCheckIsExact(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	b := newBackend(t, srv.client(t), Config{Quarantine: 100 * time.Millisecond})
	s := openSession(t, ctx, b, 5*time.Second)

	// Metadata that spells out another token must not pass for it.
	req := election.ClaimRequest{Name: "exact", ID: "a", Token: `tok"en<&>é\`,
		Metadata: map[string]string{"token": "forged", `","token":"forged",`: "x"}}
	held := claim(t, ctx, s, req)
	for _, forged := range []string{"forged", `tok"en<&>é`, `tok"en<&>é\\`, ""} {
		c := election.Claim{Name: "exact", Token: forged, Fence: held.Fence}
		if err := s.Renew(ctx, []election.Claim{c}); !errors.Is(err, election.ErrNotOwner) {
			t.Errorf("Renew with token %q = %v, want ErrNotOwner", forged, err)
		}
		if err := s.Release(ctx, c); !errors.Is(err, election.ErrNotOwner) {
			t.Errorf("Release with token %q = %v, want ErrNotOwner", forged, err)
		}
	}
	if err := s.Renew(ctx, []election.Claim{held}); err != nil {
		t.Errorf("Renew with the owner's token: %v", err)
	}
	if err := s.Release(ctx, held); err != nil {
		t.Errorf("Release with the owner's token: %v", err)
	}
}
