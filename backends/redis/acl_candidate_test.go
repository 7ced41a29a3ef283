package redis

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// TestCandidateACLIsTrusted: the other half of README "Trust model". A
// user with only the candidate ACL of a prefix (electorACL) can end or
// extend any claim under it, not only its own: it reads the owner token in
// a claim's value and releases by it, extends a dead holder's session key,
// deletes a live one, and publishes a forged announcement, which watchers
// show until a read corrects them while reads never trust it.
func TestCandidateACLIsTrusted(t *testing.T) {
	srv := startServer(t, append([]string{"--user", "default", "off"}, electorACL...)...)
	ctx := testContext(t, 30*time.Second)
	open := func() *Backend {
		t.Helper()
		b, err := OpenURL(ctx, mustParse(t, "redis://elector:acl-pass@"+srv.addr+"/?prefix=app&quarantine=10ms"))
		if err != nil {
			t.Fatalf("OpenURL as the elector: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	alice := open()
	raw := srv.clientAt(t, srv.addr)
	if err := raw.Do(ctx, "AUTH", "elector", "acl-pass").Err(); err != nil {
		t.Fatal(err)
	}
	k := keysFor("app")
	ownerOf := func(name string) claimRecord {
		t.Helper()
		value, err := raw.Get(ctx, k.claim(name)).Result()
		if err != nil {
			t.Fatalf("GET the claim as another elector: %v", err)
		}
		rec, err := decodeClaim(name, k.claim(name), value)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}

	// A release by the token read from the claim's value.
	as := openSession(t, ctx, alice, 5*time.Second)
	held := claim(t, ctx, as, request("acl", "alice"))
	rec := ownerOf("acl")
	released, err := releaseScript.Run(ctx, raw, []string{k.claim("acl"), k.fences},
		tokenNeedle(rec.Token), k.channel, jsonString("acl"), versionPrefix, "acl", "mallory", k.sessionPrefix, k.lostPrefix).Int64()
	if err != nil || released != 1 {
		t.Fatalf("release by the token read from the claim, as another elector = %d, %v; want released", released, err)
	}
	var notOwner *election.NotOwnerError
	if err := as.Renew(ctx, []election.Claim{held}); !errors.As(err, &notOwner) || len(notOwner.Claims) != 1 || notOwner.Claims[0] != held {
		t.Fatalf("alice's Renew after the release by her token = %v, want *NotOwnerError naming her claim", err)
	}

	// A session key kept alive for an hour, then deleted.
	held = claim(t, ctx, as, request("acl", "alice"))
	session := ownerOf("acl").Session
	if err := raw.PExpire(ctx, k.session(session), time.Hour).Err(); err != nil {
		t.Fatalf("PEXPIRE of alice's session key as another elector: %v", err)
	}
	if left, err := raw.PTTL(ctx, k.session(session)).Result(); err != nil || left < 59*time.Minute {
		t.Fatalf("PTTL of alice's session key after the PEXPIRE = %v, %v; want about an hour", left, err)
	}
	if err := raw.Del(ctx, k.session(session)).Err(); err != nil {
		t.Fatalf("DEL of alice's session key as another elector: %v", err)
	}
	if err := as.Renew(ctx, []election.Claim{held}); !errors.Is(err, election.ErrSessionExpired) {
		t.Fatalf("alice's Renew after her session key was deleted = %v, want ErrSessionExpired", err)
	}

	// A forged announcement: a watcher shows it; a read does not.
	as = openSession(t, ctx, alice, 5*time.Second)
	held = claim(t, ctx, as, request("acl", "alice"))
	watcher := open()
	events, err := watcher.Watch(ctx, "acl")
	if err != nil {
		t.Fatal(err)
	}
	nextEvent := func(what string) election.WatchEvent {
		t.Helper()
		ev := next(t, events)
		if ev.Err != nil {
			t.Fatalf("%s: watch error %v", what, ev.Err)
		}
		return ev
	}
	if ev := nextEvent("first event"); ev.Leader == nil || ev.Leader.Fence != held.Fence {
		t.Fatalf("first watch event = %+v, want alice at fence %d", ev.Leader, held.Fence)
	}
	// As the claim script publishes it: the version and fence, then what
	// encodeClaim gives, for a session that does not exist.
	_, published, err := encodeClaim(request("acl", "mallory"), "forged", 60000)
	if err != nil {
		t.Fatal(err)
	}
	forged := versionPrefix + strconv.FormatUint(held.Fence+1, 10) + "," + published[1:]
	if err := raw.Publish(ctx, k.channel, forged).Err(); err != nil {
		t.Fatalf("PUBLISH as another elector: %v", err)
	}
	if ev := nextEvent("after the forged announcement"); ev.Leader == nil || ev.Leader.ID != "mallory" {
		t.Fatalf("watch event after the forged announcement = %+v, want the forged leader (nothing authenticates announcements)", ev.Leader)
	}
	if l, err := watcher.Leader(ctx, "acl"); err != nil || l.ID != "alice" || l.Fence != held.Fence {
		t.Fatalf("Leader after the forged announcement = %+v, %v; want alice at fence %d (reads do not trust announcements)", l, err, held.Fence)
	}
}
