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

func TestRenewThousandClaimsInOneRoundTrip(t *testing.T) {
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

	// The first renew after start loads the script (NOSCRIPT, then EVAL).
	if err := s.Renew(ctx, claims); err != nil {
		t.Fatalf("warm-up Renew: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // let the TTLs run down, so a renewal shows

	tripsBefore, scriptsBefore := trips.total(), scriptCalls(t, ctx, admin)
	start := time.Now()
	if err := s.Renew(ctx, claims); err != nil {
		t.Fatalf("Renew of 1000 claims: %v", err)
	}
	took := time.Since(start)
	if n := trips.total() - tripsBefore; n != 1 {
		t.Errorf("Renew of 1000 claims took %d round trips, want 1", n)
	}
	if n := scriptCalls(t, ctx, admin) - scriptsBefore; n != 1 {
		t.Errorf("Renew of 1000 claims ran %d scripts on the server, want 1", n)
	}
	t.Logf("Renew of 1000 claims: one round trip, %v (race detector on)", took)
	for _, c := range []election.Claim{claims[0], claims[499], claims[999]} {
		ms, err := admin.PTTL(ctx, keysFor(DefaultPrefix, c.Name).leader).Result()
		if err != nil || ms < ttl-time.Second {
			t.Errorf("PTTL of %s after renew = %v, %v; want about %v", c.Name, ms, err, ttl)
		}
	}

	// Three claims lost behind the session's back: exactly those are named,
	// the others renewed.
	lost := []election.Claim{claims[3], claims[500], claims[998]}
	for _, c := range lost {
		if err := s.Release(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	err := s.Renew(ctx, claims)
	var notOwner *election.NotOwnerError
	if !errors.As(err, &notOwner) || !errors.Is(err, election.ErrNotOwner) {
		t.Fatalf("Renew with 3 lost claims = %v, want *NotOwnerError", err)
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

func TestRenewChunksHugeSessions(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 60*time.Second)
	client := srv.client(t)
	trips := &roundTrips{}
	client.AddHook(trips)
	b := newBackend(t, client, Config{Quarantine: 100 * time.Millisecond})
	s := openSession(t, ctx, b, 10*time.Second)
	n := 2*maxKeysPerScript + 10
	claims := claimMany(t, ctx, s, "huge", n)
	if err := s.Renew(ctx, claims); err != nil {
		t.Fatalf("warm-up Renew: %v", err)
	}
	before := trips.total()
	if err := s.Renew(ctx, claims); err != nil {
		t.Fatalf("Renew of %d claims: %v", n, err)
	}
	if got := trips.total() - before; got != 1 {
		t.Errorf("Renew of %d claims in 3 scripts took %d round trips, want 1 pipeline", n, got)
	}
	if got := len(b.renewBatches(claims)); got != 3 {
		t.Errorf("%d claims split into %d scripts, want 3", n, got)
	}
}
