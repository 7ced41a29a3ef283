package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
)

// roundTrips counts what a go-redis client sends: single commands and
// pipelines, each one round trip.
type roundTrips struct{ commands, pipelines atomic.Int64 }

func (r *roundTrips) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (r *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		r.commands.Add(1)
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		r.pipelines.Add(1)
		return next(ctx, cmds)
	}
}

func (r *roundTrips) total() int64 { return r.commands.Load() + r.pipelines.Load() }

// scriptCalls returns how many EVAL and EVALSHA calls the server executed.
func scriptCalls(t *testing.T, ctx context.Context, admin *goredis.Client) int64 {
	t.Helper()
	info, err := admin.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	var calls int64
	for _, line := range strings.Split(info, "\n") {
		for _, cmd := range []string{"cmdstat_eval:", "cmdstat_evalsha:"} {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), cmd); ok {
				n, _ := strconv.ParseInt(strings.TrimPrefix(strings.Split(rest, ",")[0], "calls="), 10, 64)
				calls += n
			}
		}
	}
	return calls
}

// claimMany claims n elections named prefix-i, waiting out the server's
// quarantine.
func claimMany(t *testing.T, ctx context.Context, s election.Session, prefix string, n int) []election.Claim {
	t.Helper()
	claims := make([]election.Claim, 0, n)
	for i := range n {
		if i == 0 {
			claims = append(claims, claim(t, ctx, s, request(fmt.Sprintf("%s-%04d", prefix, i), "a")))
			continue // the quarantine is over for every election now
		}
		c, err := s.Claim(ctx, request(fmt.Sprintf("%s-%04d", prefix, i), "a"))
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		claims = append(claims, c)
	}
	return claims
}

// awaitSynced waits until b's subscription is confirmed and re-read, so
// renewals rely on announcements.
func awaitSynced(t *testing.T, ctx context.Context, b *Backend) {
	t.Helper()
	for {
		b.mu.Lock()
		h := b.hub
		b.mu.Unlock()
		if h != nil && h.isSynced() {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("subscription not in sync: %v", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// A session with 1,000 claims renews with one script that extends its
// session key (and its lost set, absent here): one round trip, one script
// running two commands on the server, whatever the number of claims. A claim taken away behind the session's back (its key
// deleted, then claimed by another session) is named in a
// *NotOwnerError, learnt from the announcement, with no read per claim.
func TestRenewIsOneCommand(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 60*time.Second)
	admin := srv.client(t)
	client := srv.client(t)
	trips := &roundTrips{}
	client.AddHook(trips)
	b := newBackend(t, client, Config{Quarantine: 100 * time.Millisecond})
	ttl := 10 * time.Second
	s := openSession(t, ctx, b, ttl)
	claims := claimMany(t, ctx, s, "bulk", 1000)
	awaitSynced(t, ctx, b)
	time.Sleep(200 * time.Millisecond) // let the TTL run down, so a renewal shows

	tripsBefore, statsBefore := trips.total(), commandStats(t, ctx, admin)
	if err := s.Renew(ctx, claims); err != nil {
		t.Fatalf("Renew of 1000 claims: %v", err)
	}
	if n := trips.total() - tripsBefore; n != 1 {
		t.Errorf("Renew of 1000 claims took %d round trips, want 1", n)
	}
	statsAfter := commandStats(t, ctx, admin)
	var ran []string
	for cmd, calls := range statsAfter {
		if d := calls - statsBefore[cmd]; d > 0 && cmd != "info" {
			ran = append(ran, fmt.Sprintf("%s×%d", cmd, d))
		}
	}
	sort.Strings(ran)
	if got := strings.Join(ran, " "); got != "evalsha×1 pexpire×2" {
		t.Errorf("Renew of 1000 claims ran %q on the server, want one script of two PEXPIRE", got)
	}
	if ms, err := admin.PTTL(ctx, s.(*session).key).Result(); err != nil || ms < ttl-time.Second {
		t.Errorf("session PTTL after renew = %v, %v; want about %v", ms, err, ttl)
	}

	// Three claims lost behind the session's back: two deleted and then
	// claimed by another session (known from the announcements), one
	// released by token by another session (known from the store, at the
	// renewal). Exactly those are named.
	other := openSession(t, ctx, b, ttl)
	lost := []election.Claim{claims[3], claims[500], claims[998]}
	for _, c := range lost[:2] {
		if err := admin.Del(ctx, keysFor(DefaultPrefix).claim(c.Name)).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Claim(ctx, request(c.Name, "other")); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Release(ctx, lost[2]); err != nil {
		t.Fatal(err)
	}
	var notOwner *election.NotOwnerError
	for {
		err := s.Renew(ctx, claims)
		if errors.As(err, &notOwner) && len(notOwner.Claims) == len(lost) {
			break
		}
		if err != nil && !errors.As(err, &notOwner) {
			t.Fatalf("Renew with 3 lost claims = %v, want *NotOwnerError", err)
		}
		if ctx.Err() != nil {
			t.Fatalf("Renew with 3 lost claims = %v: the announcements never arrived", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := make([]string, len(notOwner.Claims))
	for i, c := range notOwner.Claims {
		got[i] = c.Name
	}
	sort.Strings(got)
	if want := []string{lost[0].Name, lost[1].Name, lost[2].Name}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("NotOwnerError names %v, want %v", got, want)
	}
}

// While the subscription is not in sync, announcements may be missing, so
// Renew checks every claim in the store: in scripts of maxKeysPerScript
// keys, all in the one round trip of the PEXPIRE.
func TestRenewChecksClaimsWhileUnsynced(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 60*time.Second)
	admin := srv.client(t)
	client := srv.client(t)
	trips := &roundTrips{}
	client.AddHook(trips)
	b := newBackend(t, client, Config{Quarantine: 100 * time.Millisecond})
	s := openSession(t, ctx, b, 10*time.Second)
	n := 2*maxKeysPerScript + 10
	claims := claimMany(t, ctx, s, "huge", n)
	awaitSynced(t, ctx, b)
	b.hub.mu.Lock() // as if the subscription had just broken
	b.hub.synced = false
	b.hub.epoch++
	b.hub.mu.Unlock()

	// Deleted behind everyone's back, unannounced: only the check sees it.
	gone := claims[n-1]
	if err := admin.Del(ctx, keysFor(DefaultPrefix).claim(gone.Name)).Err(); err != nil {
		t.Fatal(err)
	}
	_ = s.Renew(ctx, claims) // loads the script
	before, scriptsBefore := trips.total(), scriptCalls(t, ctx, admin)
	err := s.Renew(ctx, claims)
	var notOwner *election.NotOwnerError
	if !errors.As(err, &notOwner) || len(notOwner.Claims) != 1 || notOwner.Claims[0] != gone {
		t.Errorf("Renew with a deleted claim while unsynced = %v, want *NotOwnerError naming %s", err, gone.Name)
	}
	if got := trips.total() - before; got != 1 {
		t.Errorf("Renew of %d claims took %d round trips, want 1 pipeline", n, got)
	}
	if got := scriptCalls(t, ctx, admin) - scriptsBefore; got != 4 {
		t.Errorf("Renew of %d claims while unsynced ran %d scripts, want 4 (the renewal and 3 checks)", n, got)
	}
}
