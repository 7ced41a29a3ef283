package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/teststore"
)

// startSentinel starts one Sentinel (quorum 1, down after 1s) monitoring
// primary as "elect".
func startSentinel(t *testing.T, primary *server) string {
	t.Helper()
	host, primaryPort, _ := net.SplitHostPort(primary.addr)
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	monitor := fmt.Sprintf(`sentinel monitor elect %s %s 1
sentinel down-after-milliseconds elect 1000
sentinel failover-timeout elect 5000
`, host, primaryPort)
	if err := os.WriteFile(conf, []byte(monitor), 0o600); err != nil {
		t.Fatal(err)
	}
	return teststore.StartRedis(t, teststore.RedisOptions{ConfigFile: conf, Args: []string{"--sentinel"}}).Addr
}

// waitReplicaOnline waits until primary reports n online replicas.
func waitReplicaOnline(t testing.TB, ctx context.Context, primary *server, n int) {
	t.Helper()
	admin := primary.client(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := admin.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, fmt.Sprintf("connected_slaves:%d", n)) && strings.Count(info, "state=online") == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d replicas not online within 30s: %s %v", n, info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSentinelFailover runs the backend on go-redis's failover client: it
// works through Sentinel, and after the primary dies and Sentinel promotes
// the replica, watches fail once (ErrUnavailable), are re-established on the
// new primary, and claims work there.
func TestSentinelFailover(t *testing.T) {
	primary := startServer(t, "--repl-diskless-sync-delay", "0")
	host, port, _ := net.SplitHostPort(primary.addr)
	replica := startServer(t, "--replicaof", host, port)
	ctx := testContext(t, 120*time.Second)
	waitReplicaOnline(t, ctx, primary, 1)
	sentinel := startSentinel(t, primary)

	client := goredis.NewFailoverClient(&goredis.FailoverOptions{
		MasterName:            "elect",
		SentinelAddrs:         []string{sentinel},
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
	})
	t.Cleanup(func() { _ = client.Close() })
	// A failover takes seconds: longer than two SubscriptionCheck periods.
	b := newBackend(t, client, Config{Quarantine: 100 * time.Millisecond, SubscriptionCheck: 200 * time.Millisecond})
	// A session TTL that outlasts the failover: nobody renews here.
	s := openSession(t, ctx, b, time.Minute)
	held, ch := claimWatched(t, ctx, b, s, "failover", "a")

	if err := primary.proc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// The subscription is down for longer than two SubscriptionCheck
	// periods: the watch ends with ErrUnavailable (the core watches again).
	if ev := next(t, ch); !errors.Is(ev.Err, election.ErrUnavailable) {
		t.Fatalf("watch event after the primary died = %+v, want Err wrapping ErrUnavailable", ev)
	}
	closed(t, ch)

	// Sentinel promotes the replica; the claim replicated before the
	// failover is still there, and the backend follows the new primary.
	deadline := time.Now().Add(60 * time.Second)
	for {
		role, err := replica.client(t).Do(ctx, "ROLE").Slice()
		if err == nil && len(role) > 0 && role[0] == "master" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not promoted within 60s: %v %v", role, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		l, err := b.Leader(ctx, "failover")
		if err == nil {
			if l.Fence != held.Fence {
				t.Fatalf("after failover, Leader = %+v, want the replicated term (fence %d)", l, held.Fence)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Leader through Sentinel after failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A watch made after the failover follows the new primary.
	ch, err := b.Watch(ctx, "failover")
	if err != nil {
		t.Fatalf("Watch after failover: %v", err)
	}
	if ev := next(t, ch); ev.Leader == nil || ev.Leader.Fence != held.Fence {
		t.Fatalf("first watch event after failover = %+v", ev)
	}
	if err := s.Release(ctx, held); err != nil {
		t.Fatalf("Release on the new primary: %v", err)
	}
	if ev := next(t, ch); ev.Err != nil || ev.Leader != nil {
		t.Errorf("watch event after release = %+v, want vacant", ev)
	}
	again := claim(t, ctx, s, request("failover", "b"))
	if again.Fence <= held.Fence {
		t.Errorf("fence after failover %d, not above %d", again.Fence, held.Fence)
	}
	if ev := next(t, ch); ev.Err != nil || ev.Leader == nil || ev.Leader.Fence != again.Fence {
		t.Errorf("watch event after the claim on the new primary = %+v, want fence %d", ev, again.Fence)
	}
}
