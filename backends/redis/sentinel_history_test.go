package redis

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/history"
	"github.com/electionkit/election/internal/teststore"
)

// startSentinels starts n Sentinels monitoring primary as "elect" with the
// given quorum and down-after-milliseconds, and returns their addresses.
// They find each other through the primary.
func startSentinels(t *testing.T, primary *server, n, quorum int, downAfter time.Duration) []string {
	t.Helper()
	host, port, _ := net.SplitHostPort(primary.addr)
	var addrs []string
	for i := range n {
		conf := filepath.Join(t.TempDir(), fmt.Sprintf("sentinel-%d.conf", i))
		monitor := fmt.Sprintf(`sentinel monitor elect %s %s %d
sentinel down-after-milliseconds elect %d
sentinel failover-timeout elect 5000
`, host, port, quorum, downAfter.Milliseconds())
		if err := os.WriteFile(conf, []byte(monitor), 0o600); err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, teststore.StartRedis(t, teststore.RedisOptions{ConfigFile: conf, Args: []string{"--sentinel"}}).Addr)
	}
	return addrs
}

// TestSentinelFailoverHistory: three candidates, each through a failover
// client of its own, on a primary with one replica watched by three
// Sentinels (quorum 2). The primary is killed twice (the second time the
// one promoted the first time, after the first came back as its replica);
// each time Sentinel promotes the other and the election goes on there.
// With WaitReplicas 1 a claim or renewal counts only once the replica has
// it, so no write a leader relied on is lost in the failover: the history
// checker finds no two overlapping terms and no stale fence. (Without it
// a failover can lose them: README "Failover window".)
func TestSentinelFailoverHistory(t *testing.T) {
	const name = "sentinel-history"
	ttl := 2 * time.Second
	ctx := testContext(t, 4*time.Minute)
	first := startServer(t, "--repl-diskless-sync-delay", "0")
	host, port, _ := net.SplitHostPort(first.addr)
	second := startServer(t, "--repl-diskless-sync-delay", "0", "--replicaof", host, port)
	waitReplicaOnline(t, ctx, first, 1)
	sentinels := startSentinels(t, first, 3, 2, time.Second)
	servers := map[string]*server{first.addr: first, second.addr: second}
	admin := goredis.NewSentinelClient(&goredis.Options{Addr: sentinels[0], ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = admin.Close() })
	// Wait until the Sentinels know each other, so that a quorum can act.
	for deadline := time.Now().Add(30 * time.Second); ; {
		peers, err := admin.Sentinels(ctx, "elect").Result()
		if err == nil && len(peers) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Sentinels did not find each other within 30s: %v %v", peers, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	log := history.New(time.Now)
	var candidates []*election.Candidate
	var electors []*election.Elector
	for i := range 3 {
		client := goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName:            "elect",
			SentinelAddrs:         sentinels,
			ContextTimeoutEnabled: true,
			DialTimeout:           time.Second,
		})
		t.Cleanup(func() { _ = client.Close() })
		b := newBackend(t, client, Config{WaitReplicas: 1, WaitTimeout: 500 * time.Millisecond, SubscriptionCheck: 500 * time.Millisecond})
		el, err := election.New(b, election.Config{TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		electors = append(electors, el)
		id := fmt.Sprintf("c%d", i)
		c, err := el.NewCandidate(election.CandidateConfig{Name: name, ID: id})
		if err != nil {
			t.Fatal(err)
		}
		c.AddHandlers(log.Handler(id))
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		candidates = append(candidates, c)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, c := range candidates {
			_ = c.Stop(stopCtx)
		}
		for _, el := range electors {
			_ = el.Close(stopCtx)
		}
		if n := log.Report(t, history.Bounds{}); n < 3 {
			t.Errorf("saw %d terms, want at least 3 (one at start, one after each failover)", n)
		}
	}()

	waitTerm := func(when string, after int) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for log.Count(name) <= after || leaderAmong(candidates) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no new term within 90s (terms so far %d)", when, log.Count(name))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	master := func() string {
		t.Helper()
		addr, err := admin.GetMasterAddrByName(ctx, "elect").Result()
		if err != nil || len(addr) != 2 {
			t.Fatalf("SENTINEL get-master-addr-by-name: %v %v", addr, err)
		}
		return net.JoinHostPort(addr[0], addr[1])
	}
	waitTerm("at start", 0)

	for round := range 2 {
		old := master()
		before := log.Count(name)
		killed := time.Now()
		if err := servers[old].proc.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(60 * time.Second); master() == old; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: Sentinel did not promote a replica within 60s", round)
			}
		}
		promoted := master()
		t.Logf("round %d: %s killed, %s promoted after %v", round, old, promoted, time.Since(killed).Round(time.Millisecond))
		// With WaitReplicas 1 nobody is elected until the new primary has
		// a replica again: the old primary comes back (empty) and Sentinel
		// makes it one.
		if err := servers[old].proc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitReplicaOnline(t, ctx, servers[promoted], 1)
		// A term held through the failover may go on (its writes were
		// replicated); a resignation forces the next one on the new
		// primary.
		if l := leaderAmong(candidates); l != nil {
			_ = l.Resign(ctx)
		}
		waitTerm(fmt.Sprintf("round %d", round), before)
		t.Logf("round %d: a term on %s %v after the kill", round, promoted, time.Since(killed).Round(time.Millisecond))
	}
}

func leaderAmong(cs []*election.Candidate) *election.Candidate {
	for _, c := range cs {
		if c.IsLeader() {
			return c
		}
	}
	return nil
}
