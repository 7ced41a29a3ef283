package robustness

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

	"github.com/electionkit/election/internal/teststore"
)

// sentinelMaster is the name the Sentinels monitor the primary under.
const sentinelMaster = "elect"

// redisSentinel is the robustness store of Redis with Sentinel: a primary
// and a replica (redis-server without persistence) watched by 3 Sentinels
// (quorum 2, a primary is down after 1s). Every candidate reaches all five
// through a fault proxy each (the failover client asks the Sentinels, then
// dials the primary they name), and its backend waits for one replica's
// acknowledgement of every claim and renewal (WaitReplicas 1): without it
// a failover loses claims and gives two leaders, which the backend's
// README states.
type redisSentinel struct {
	t         *testing.T
	servers   []*teststore.Redis
	sentinels []*teststore.Redis
}

func startRedisSentinel(t *testing.T) *store {
	r := &redisSentinel{t: t}
	// Neither data server has --replicaof among its arguments: the roles
	// are Sentinel's to change, and a restarted server is made a replica
	// of the primary the Sentinels name (replicate).
	for range 2 {
		r.servers = append(r.servers, teststore.StartRedis(t, teststore.RedisOptions{Args: []string{"--repl-diskless-sync-delay", "0"}}))
	}
	ctx, cancel := ctxBound()
	defer cancel()
	if err := r.replicate(ctx, r.servers[1], r.servers[0].Addr); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(r.servers[0].Addr)
	for i := range 3 {
		conf := filepath.Join(t.TempDir(), fmt.Sprintf("sentinel-%d.conf", i))
		monitor := fmt.Sprintf("sentinel monitor %s %s %s 2\nsentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\n",
			sentinelMaster, host, port, sentinelMaster, sentinelMaster)
		if err := os.WriteFile(conf, []byte(monitor), 0o600); err != nil {
			t.Fatal(err)
		}
		r.sentinels = append(r.sentinels, teststore.StartRedis(t, teststore.RedisOptions{ConfigFile: conf, Args: []string{"--sentinel"}}))
	}
	// A quorum can act once the Sentinels know each other and the replica.
	for _, s := range r.sentinels {
		admin := goredis.NewSentinelClient(&goredis.Options{Addr: s.Addr, ContextTimeoutEnabled: true})
		for {
			peers, err := admin.Sentinels(ctx, sentinelMaster).Result()
			replicas, rerr := admin.Replicas(ctx, sentinelMaster).Result()
			if err == nil && rerr == nil && len(peers) == 2 && len(replicas) == 1 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("Sentinel %s: peers %v (%v), replicas %v (%v) after %v", s.Addr, peers, err, replicas, rerr, waitBound)
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = admin.Close()
	}
	st := &store{name: "redis-sentinel", Store: r, attachAll: true, expiryLag: 250 * time.Millisecond, logs: map[string]string{}}
	for i, s := range r.servers {
		st.logs[fmt.Sprintf("redis-%d", i)] = s.LogPath()
	}
	for i, s := range r.sentinels {
		st.logs[fmt.Sprintf("sentinel-%d", i)] = s.LogPath()
	}
	var sentinelAddrs []string
	for _, s := range r.servers {
		st.nodes = append(st.nodes, s.Addr)
	}
	for _, s := range r.sentinels {
		st.nodes = append(st.nodes, s.Addr)
		sentinelAddrs = append(sentinelAddrs, s.Addr)
	}
	st.args = func(l links) []string {
		var via []string
		for i, p := range l {
			via = append(via, st.nodes[i]+"="+p.Addr())
		}
		return []string{"-sentinel-master", sentinelMaster, "-sentinels", strings.Join(sentinelAddrs, ","),
			"-via", strings.Join(via, ","), "-ttl", ttl.String(), "-prefix", "robustness", "-wait-replicas", "1"}
	}
	st.faults = []fault{
		{name: "primary-loss", inject: func(w *world, _ *proc, frac float64) {
			// kill -9 of the primary: the Sentinels promote the replica;
			// the old primary comes back (empty) ½ to 3 TTLs after the
			// kill, or once the promotion is done if that is later, and
			// becomes the new primary's replica.
			ctx, cancel := ctxBound()
			defer cancel()
			killed := time.Now()
			old := r.server(r.master(ctx))
			if err := old.Stop(ctx); err != nil {
				w.t.Fatalf("kill the Redis primary: %v", err)
			}
			for r.master(ctx) == old.Addr {
				if ctx.Err() != nil {
					w.t.Fatalf("the Sentinels did not promote the replica within %v", waitBound)
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(time.Until(killed.Add(between(0.5, 3, frac))))
			r.restart(ctx, old)
		}},
		{name: "replica-loss", inject: func(w *world, _ *proc, frac float64) {
			// kill -9 of the replica for ½ to 3 TTLs: no claim or renewal
			// is acknowledged meanwhile (WaitReplicas 1).
			ctx, cancel := ctxBound()
			defer cancel()
			master := r.master(ctx)
			replica := r.servers[0]
			if replica.Addr == master {
				replica = r.servers[1]
			}
			if err := replica.Stop(ctx); err != nil {
				w.t.Fatalf("kill the Redis replica: %v", err)
			}
			time.Sleep(between(0.5, 3, frac))
			r.restart(ctx, replica)
		}},
		{name: "sentinel-loss", inject: func(w *world, _ *proc, frac float64) {
			// kill -9 of one Sentinel for ½ to 3 TTLs: two still make a
			// quorum; clients asking it ask another.
			ctx, cancel := ctxBound()
			defer cancel()
			s := r.sentinels[min(int(frac*3), 2)]
			if err := s.Stop(ctx); err != nil {
				w.t.Fatalf("kill Sentinel %s: %v", s.Addr, err)
			}
			time.Sleep(between(0.5, 3, frac))
			if err := s.Start(ctx); err != nil {
				w.t.Fatalf("start Sentinel %s: %v", s.Addr, err)
			}
		}},
	}
	return st
}

// master returns the primary's address as a running Sentinel names it.
func (r *redisSentinel) master(ctx context.Context) string {
	for {
		for _, s := range r.sentinels {
			if s.PID() == 0 {
				continue
			}
			admin := goredis.NewSentinelClient(&goredis.Options{Addr: s.Addr, ContextTimeoutEnabled: true})
			addr, err := admin.GetMasterAddrByName(ctx, sentinelMaster).Result()
			_ = admin.Close()
			if err == nil && len(addr) == 2 {
				return net.JoinHostPort(addr[0], addr[1])
			}
		}
		if ctx.Err() != nil {
			r.t.Fatalf("no Sentinel names the primary: %v", ctx.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// server returns the data server at addr.
func (r *redisSentinel) server(addr string) *teststore.Redis {
	for _, s := range r.servers {
		if s.Addr == addr {
			return s
		}
	}
	r.t.Fatalf("the Sentinels name %s, which is no data server of the test", addr)
	return nil
}

// restart starts the stopped server s (empty) and makes it the replica of
// the primary the Sentinels name, as an operator would (Sentinel would
// too, after some 8 seconds or more), then waits until the primary has it
// online.
func (r *redisSentinel) restart(ctx context.Context, s *teststore.Redis) {
	if err := s.Start(ctx); err != nil {
		r.t.Fatalf("start redis-server %s: %v", s.Addr, err)
	}
	if err := r.replicate(ctx, s, r.master(ctx)); err != nil {
		r.t.Fatal(err)
	}
}

// replicate makes s a replica of the primary at master and waits until
// the primary reports it online.
func (r *redisSentinel) replicate(ctx context.Context, s *teststore.Redis, master string) error {
	if s.Addr == master {
		return r.online(ctx, master)
	}
	host, port, _ := net.SplitHostPort(master)
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr, ContextTimeoutEnabled: true})
	defer c.Close()
	if err := c.ReplicaOf(ctx, host, port).Err(); err != nil {
		return fmt.Errorf("REPLICAOF %s on %s: %w", master, s.Addr, err)
	}
	return r.online(ctx, master)
}

// online waits until the primary at master reports its replica online.
func (r *redisSentinel) online(ctx context.Context, master string) error {
	c := goredis.NewClient(&goredis.Options{Addr: master, ContextTimeoutEnabled: true})
	defer c.Close()
	for {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "role:master") && strings.Contains(info, "state=online") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the primary %s has no replica online: %w (last: %q, %v)", master, ctx.Err(), info, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Pause freezes both data servers (the Sentinels run on).
func (r *redisSentinel) Pause(ctx context.Context) error {
	return r.both(func(s *teststore.Redis) error { return s.Pause(ctx) })
}

// Resume continues both data servers.
func (r *redisSentinel) Resume(ctx context.Context) error {
	return r.both(func(s *teststore.Redis) error { return s.Resume(ctx) })
}

// Stop kills both data servers.
func (r *redisSentinel) Stop(ctx context.Context) error {
	return r.both(func(s *teststore.Redis) error { return s.Stop(ctx) })
}

// Start starts both data servers (empty) and makes the one the Sentinels
// do not name the other's replica.
func (r *redisSentinel) Start(ctx context.Context) error {
	if err := r.both(func(s *teststore.Redis) error { return s.Start(ctx) }); err != nil {
		return err
	}
	master := r.master(ctx)
	for _, s := range r.servers {
		if s.Addr != master {
			return r.replicate(ctx, s, master)
		}
	}
	return fmt.Errorf("the Sentinels name %s, which is no data server of the test", master)
}

func (r *redisSentinel) both(op func(*teststore.Redis) error) error {
	return errors.Join(op(r.servers[0]), op(r.servers[1]))
}
