package redis

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// observerACL is the README's read-only user: the prefix's keys and
// channel, and only the read commands that the read script, the watch and
// the expiry timer run. Read-only key patterns (%R~) cannot be used: Redis
// counts EVAL's keys as written, and EVAL_RO needs Redis 7.
var observerACL = []string{"--user", "observer", "on", ">obs-pass", "~{app}:*", "&{app}:*", "+@connection",
	"+eval", "+evalsha", "+get", "+hget", "+pttl", "+subscribe", "+unsubscribe"}

// electorACL is the README's candidate user (prefix "app"): the prefix's
// keys and channel, and the commands the scripts, the watch and the
// expiry timer run.
var electorACL = []string{"--user", "elector", "on", ">acl-pass", "~{app}:*", "&{app}:*", "+@connection",
	"+eval", "+evalsha", "+get", "+set", "+exists", "+pttl", "+pexpire", "+del", "+hget", "+hset", "+sadd", "+smembers", "+time", "+info", "+publish", "+subscribe", "+unsubscribe"}

// TestObserverACL: the trust model of the README. The read-only user
// follows the leader (Leader, and a watch that sees a release and a new
// claim pushed) but cannot open a session, claim, renew or release, not
// even with the holder's owner token, which it can read in the claim's
// value; nor delete or overwrite the claim, extend or delete the holder's
// session key, or publish a forged announcement.
func TestObserverACL(t *testing.T) {
	args := append([]string{"--user", "default", "off"}, electorACL...)
	srv := startServer(t, append(args, observerACL...)...)
	ctx := testContext(t, 30*time.Second)
	elector, err := OpenURL(ctx, mustParse(t, "redis://elector:acl-pass@"+srv.addr+"/?prefix=app&quarantine=10ms"))
	if err != nil {
		t.Fatalf("OpenURL as the elector: %v", err)
	}
	defer elector.Close()
	es, err := elector.OpenSession(ctx, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	held := claim(t, ctx, es, request("acl", "alice"))

	obs, err := OpenURL(ctx, mustParse(t, "redis://observer:obs-pass@"+srv.addr+"/?prefix=app"))
	if err != nil {
		t.Fatalf("OpenURL as the observer: %v", err)
	}
	defer obs.Close()
	if l, err := obs.Leader(ctx, "acl"); err != nil || l.ID != "alice" || l.Fence != held.Fence {
		t.Fatalf("Leader as the observer = %+v, %v; want alice at fence %d", l, err, held.Fence)
	}
	events, err := obs.Watch(ctx, "acl")
	if err != nil {
		t.Fatalf("Watch as the observer: %v", err)
	}
	next := func(what string) election.WatchEvent {
		t.Helper()
		select {
		case ev := <-events:
			if ev.Err != nil {
				t.Fatalf("%s: watch error %v", what, ev.Err)
			}
			return ev
		case <-ctx.Done():
			t.Fatalf("%s: no watch event", what)
			return election.WatchEvent{}
		}
	}
	if ev := next("first event"); ev.Leader == nil || ev.Leader.ID != "alice" {
		t.Fatalf("first watch event as the observer: %+v, want alice", ev.Leader)
	}

	if _, err := obs.OpenSession(ctx, 5*time.Second); !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("OpenSession as the observer = %v, want ErrInvalidArgument with NOPERM", err)
	}
	raw := srv.clientAt(t, srv.addr)
	if err := raw.Do(ctx, "AUTH", "observer", "obs-pass").Err(); err != nil {
		t.Fatal(err)
	}
	k := keysFor("app")
	sid := es.(*session).id
	// The release script, with the owner token read from the claim.
	if err := releaseScript.Run(ctx, raw, []string{k.claim("acl"), k.fences},
		tokenNeedle(held.Token), k.channel, jsonString("acl"), versionPrefix, "acl", "x", k.sessionPrefix, k.lostPrefix).Err(); !denied(err) {
		t.Errorf("release script as the observer = %v, want NOPERM", err)
	}
	if err := renewScript.Run(ctx, raw, []string{k.session(sid), k.lost(sid)}, 60000).Err(); !denied(err) {
		t.Errorf("renew script on the holder's session as the observer = %v, want NOPERM", err)
	}
	for what, cmd := range map[string][]any{
		"DEL claim":       {"DEL", k.claim("acl")},
		"SET claim":       {"SET", k.claim("acl"), "x"},
		"PEXPIRE session": {"PEXPIRE", k.session(sid), 60000},
		"DEL session":     {"DEL", k.session(sid)},
		"PUBLISH":         {"PUBLISH", k.channel, `{"v":1,"fence":1,"kind":"release","name":"acl"}`},
	} {
		if err := raw.Do(ctx, cmd...).Err(); !denied(err) {
			t.Errorf("%s as the observer = %v, want NOPERM", what, err)
		}
	}
	if l, err := obs.Leader(ctx, "acl"); err != nil || l.ID != "alice" || l.Fence != held.Fence {
		t.Fatalf("Leader after the observer's attempts = %+v, %v; want alice at fence %d still", l, err, held.Fence)
	}
	if err := es.Renew(ctx, []election.Claim{held}); err != nil {
		t.Fatalf("the elector's renewal after the observer's attempts: %v", err)
	}

	// The observer follows changes pushed on the channel.
	if err := es.Release(ctx, held); err != nil {
		t.Fatal(err)
	}
	if ev := next("after the release"); ev.Leader != nil {
		t.Fatalf("watch event after the release: %+v, want vacant", ev.Leader)
	}
	again := claim(t, ctx, es, request("acl", "bob"))
	if ev := next("after a new claim"); ev.Leader == nil || ev.Leader.ID != "bob" || ev.Leader.Fence != again.Fence {
		t.Fatalf("watch event after a new claim: %+v, want bob at fence %d", ev.Leader, again.Fence)
	}
}

// denied reports whether err is Redis refusing a command to the user:
// NOPERM, or the error of a script whose command the user may not run.
func denied(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "NOPERM") || strings.Contains(err.Error(), "can't run this command"))
}
