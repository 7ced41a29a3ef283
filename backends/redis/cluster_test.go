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
	"github.com/electionkit/election/internal/testserver"
	"github.com/electionkit/election/internal/teststore"
)

// startCluster starts a Redis Cluster of three primaries without replicas
// and returns their addresses once every node reports cluster_state:ok.
func startCluster(t *testing.T, ctx context.Context) []string {
	t.Helper()
	const nodes = 3
	buses := testserver.FreePorts(t, nodes) // cluster-bus port per node
	var addrs []string
	var clients []*goredis.Client
	for i := range nodes {
		addr := teststore.StartRedis(t, teststore.RedisOptions{Args: []string{
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(buses[i]),
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
		}}).Addr
		addrs = append(addrs, addr)
		c := goredis.NewClient(&goredis.Options{Addr: addr})
		t.Cleanup(func() { _ = c.Close() })
		clients = append(clients, c)
	}
	const slots = 16384
	for i, c := range clients {
		first, last := i*slots/nodes, (i+1)*slots/nodes-1
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", addrs[i], err)
		}
		if i > 0 {
			host, port, _ := net.SplitHostPort(addrs[i])
			// The bus port is not port+10000 here, so MEET names it.
			if err := clients[0].Do(ctx, "CLUSTER", "MEET", host, port, buses[i]).Err(); err != nil {
				t.Fatalf("CLUSTER MEET %s: %v", addrs[i], err)
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range clients {
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster not ok within 30s: %s %v", info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return addrs
}

func TestCluster(t *testing.T) {
	ctx := testContext(t, 90*time.Second)
	addrs := startCluster(t, ctx)
	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })
	b := newBackend(t, client, Config{Quarantine: 100 * time.Millisecond})
	s := openSession(t, ctx, b, 10*time.Second)

	// Watch a few elections through the one subscription, which go-redis
	// puts on the node of the channel's slot.
	const watched = 6
	var chans []<-chan election.WatchEvent
	for i := range watched {
		ch, err := b.Watch(ctx, fmt.Sprintf("cluster-%02d", i))
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		next(t, ch)
		chans = append(chans, ch)
	}
	var claims []election.Claim
	for i := range 30 {
		claims = append(claims, claim(t, ctx, s, request(fmt.Sprintf("cluster-%02d", i), "a")))
	}
	for i, ch := range chans {
		if ev := next(t, ch); ev.Leader == nil || ev.Leader.Fence != claims[i].Fence {
			t.Errorf("watch of cluster-%02d got %+v, want fence %d", i, ev, claims[i].Fence)
		}
	}
	// Every key of the prefix lives in its one hash slot, so one script
	// may touch the claim, the fences and any session of the prefix: the
	// price is that a prefix's elections are not spread over the nodes
	// (use several prefixes for that).
	var used atomic.Int64 // ForEachMaster calls in parallel
	err := client.ForEachMaster(ctx, func(ctx context.Context, node *goredis.Client) error {
		n, err := node.DBSize(ctx).Result()
		if n > 0 {
			used.Add(1)
		}
		return err
	})
	if err != nil || used.Load() != 1 {
		t.Fatalf("keys on %d of 3 primaries (%v), want all on the prefix's one", used.Load(), err)
	}

	if err := s.Renew(ctx, claims); err != nil {
		t.Fatalf("Renew of 30 claims across the cluster: %v", err)
	}
	lost := []election.Claim{claims[1], claims[17]}
	for _, c := range lost {
		if err := s.Release(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	err = s.Renew(ctx, claims)
	var notOwner *election.NotOwnerError
	if !errors.As(err, &notOwner) {
		t.Fatalf("Renew with 2 released claims = %v, want *NotOwnerError", err)
	}
	var got []string
	for _, c := range notOwner.Claims {
		got = append(got, c.Name)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != lost[0].Name+","+lost[1].Name {
		t.Errorf("NotOwnerError names %v, want %s and %s", got, lost[0].Name, lost[1].Name)
	}
	if ev := next(t, chans[1]); ev.Err != nil || ev.Leader != nil {
		t.Errorf("watch after release = %+v, want vacant", ev)
	}
	if l, err := b.Leader(ctx, "cluster-05"); err != nil || l.Fence != claims[5].Fence {
		t.Errorf("Leader = %+v, %v", l, err)
	}
}
