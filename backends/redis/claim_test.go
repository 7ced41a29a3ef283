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
	// The holder's expiry is reported by the watch (one timer per holding
	// session), so a refused claim carries no timer of its own.
	if taken.ExpiresIn != 0 {
		t.Errorf("TakenError.ExpiresIn = %v, want 0", taken.ExpiresIn)
	}
	// The same session claiming again with a new token is refused: a claim
	// never extends. With the same token it is a replay of the claim
	// (go-redis retried a write that had succeeded): the same term.
	again := reqA
	again.Token = "another-token"
	if _, err := sa.Claim(ctx, again); !errors.Is(err, election.ErrTaken) {
		t.Errorf("re-Claim by the holder with a new token = %v, want ErrTaken", err)
	}
	if replay, err := sa.Claim(ctx, reqA); err != nil || replay != held {
		t.Errorf("replayed Claim = %+v, %v; want %+v", replay, err, held)
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
	// Renewal extends the session key; the claim key has no expiry.
	admin := srv.client(t)
	ms, err := admin.PTTL(ctx, s.(*session).key).Result()
	if err != nil || ms <= 0 || ms > ttl {
		t.Errorf("session PTTL after renew = %v, %v; want in (0, %v]", ms, err, ttl)
	}
	if ms, err := admin.PTTL(ctx, keysFor(DefaultPrefix).claim("renewed")).Result(); err != nil || ms != -1 {
		t.Errorf("claim PTTL = %v, %v; want none (-1)", ms, err)
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
	key := keysFor(DefaultPrefix).claim("tokens")
	before, err := raw.Get(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}

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
	if exists, _ := raw.Exists(ctx, keysFor(DefaultPrefix).claim("never-claimed")).Result(); exists != 0 {
		t.Errorf("renew of a vacant election created its key")
	}
	if err := s.Release(ctx, held); err != nil {
		t.Errorf("owner's Release: %v", err)
	}
	if _, err := b.Leader(ctx, "tokens"); !errors.Is(err, election.ErrNoLeader) {
		t.Errorf("after release, Leader = %v, want ErrNoLeader", err)
	}
}

// A session that is not renewed ends at its TTL, and with it its claim: a
// waiter learns of it from its watch (the holder session's timer), with no
// timer of its own, and takes over with a greater fence.
func TestClaimExpires(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	b := newBackend(t, srv.client(t), Config{NoQuarantine: true})
	ttl := 300 * time.Millisecond
	opened := time.Now()
	sa, sb := openSession(t, ctx, b, ttl), openSession(t, ctx, b, 10*time.Second)
	ch, err := b.Watch(ctx, "expiring")
	if err != nil {
		t.Fatal(err)
	}
	next(t, ch) // vacant
	first := claim(t, ctx, sa, request("expiring", "a"))
	if ev := next(t, ch); ev.Leader == nil || ev.Leader.Fence != first.Fence || ev.ExpiresIn != 0 {
		t.Fatalf("watch after the claim = %+v, want fence %d and no ExpiresIn", ev, first.Fence)
	}
	if _, err := sb.Claim(ctx, request("expiring", "b")); !errors.Is(err, election.ErrTaken) {
		t.Fatalf("Claim while held = %v, want ErrTaken", err)
	}
	if ev := next(t, ch); ev.Leader != nil || ev.Err != nil {
		t.Fatalf("watch after a's session expired = %+v, want a vacancy", ev)
	}
	// The claim lives as long as its session: one TTL from OpenSession.
	if elapsed := time.Since(opened); elapsed < ttl {
		t.Errorf("vacancy seen %v after a's session opened, before its TTL %v", elapsed, ttl)
	}
	second, err := sb.Claim(ctx, request("expiring", "b"))
	if err != nil {
		t.Fatalf("Claim after the vacancy: %v", err)
	}
	if second.Fence <= first.Fence {
		t.Errorf("fence after expiry %d, not above %d", second.Fence, first.Fence)
	}
	if err := sa.Renew(ctx, []election.Claim{first}); !errors.Is(err, election.ErrSessionExpired) {
		t.Errorf("Renew of the expired session = %v, want ErrSessionExpired", err)
	}
}

// Close deletes the session key: its claims are vacant at once, watchers
// hear of it, and the session refuses further use.
func TestSessionClosed(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	b := newBackend(t, srv.client(t), Config{NoQuarantine: true})
	s := openSession(t, ctx, b, time.Minute)
	held, ch := claimWatched(t, ctx, b, s, "closing", "a")
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if ev := next(t, ch); ev.Leader != nil || ev.Err != nil {
		t.Errorf("watch after Close = %+v, want a vacancy", ev)
	}
	if _, err := s.Claim(ctx, request("other", "a")); !errors.Is(err, election.ErrSessionExpired) {
		t.Errorf("Claim after Close = %v, want ErrSessionExpired", err)
	}
	if err := s.Renew(ctx, []election.Claim{held}); !errors.Is(err, election.ErrSessionExpired) {
		t.Errorf("Renew after Close = %v, want ErrSessionExpired", err)
	}
	if l, err := b.Leader(ctx, "closing"); !errors.Is(err, election.ErrNoLeader) {
		t.Errorf("Leader after session Close = %+v, %v; want ErrNoLeader", l, err)
	}
	// The stale claim key is vacant: not the owner's to release.
	if err := s.Release(ctx, held); !errors.Is(err, election.ErrNotOwner) {
		t.Errorf("Release after Close = %v, want ErrNotOwner", err)
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

// A claim whose session expired is vacant to every script: Leader reports
// no leader, and the owner's Release (and a release by its token through
// another session) is refused with ErrNotOwner, as Backend's contract
// says, rather than reporting as released a claim a reader saw gone (the
// history TestSentinelConformance's LinearizableHistory once recorded:
// Leader vacant, then the expired owner's Release nil).
func TestReleaseOfExpiredClaim(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	b := newBackend(t, srv.client(t), Config{NoQuarantine: true})
	sa, sb := openSession(t, ctx, b, 2*time.Second), openSession(t, ctx, b, 10*time.Second)
	held := claim(t, ctx, sa, request("expired-release", "a"))
	ch, err := b.Watch(ctx, "expired-release")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch); ev.Leader == nil || ev.Leader.Fence != held.Fence {
		t.Fatalf("watch = %+v, want a with fence %d", ev, held.Fence)
	}
	// a's session is never renewed: the watch reports its expiry.
	if ev := next(t, ch); ev.Leader != nil || ev.Err != nil {
		t.Fatalf("watch after a's session expired = %+v, want a vacancy", ev)
	}
	if l, err := b.Leader(ctx, "expired-release"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("Leader after a's session expired = %+v, %v; want ErrNoLeader", l, err)
	}
	if err := sa.Release(ctx, held); !errors.Is(err, election.ErrNotOwner) {
		t.Errorf("Release of the expired claim by its owner = %v, want ErrNotOwner", err)
	}
	if err := sb.Release(ctx, held); !errors.Is(err, election.ErrNotOwner) {
		t.Errorf("Release of the expired claim by its token through another session = %v, want ErrNotOwner", err)
	}
	taken := claim(t, ctx, sb, request("expired-release", "b"))
	if taken.Fence <= held.Fence {
		t.Errorf("fence after expiry %d, not above %d", taken.Fence, held.Fence)
	}
}
