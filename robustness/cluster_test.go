package robustness

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/electionkit/election/internal/testserver"
	"github.com/electionkit/election/internal/teststore"
)

// The multi-node stores: an etcd cluster of 3 members, each candidate
// attached to one member (in turn) through its own fault proxy, and a
// Consul datacenter of 3 servers and 2 client agents, each candidate on one
// client agent, as on a host of its own. Their fault kinds strike one node
// (a member, a server or an agent) instead of the store as a whole; every
// one heals (the node runs again, the cluster has a Raft leader) before
// inject returns.

// etcdCluster is the robustness store over a 3-member etcd cluster.
type etcdCluster struct {
	t       *testing.T
	members []*teststore.Etcd
	admin   *clientv3.Client // every member's endpoint, for Status
}

func startEtcdCluster(t *testing.T) *store {
	members := teststore.StartEtcdCluster(t, 3, teststore.EtcdOptions{PeerProxies: true})
	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, m.Addr)
	}
	admin, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd admin client: %v", err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	c := &etcdCluster{t: t, members: members, admin: admin}
	st := &store{name: "etcd-cluster", Store: c, nodes: endpoints, expiryLag: time.Second, logs: map[string]string{},
		url: func(a string) string { return "etcd://" + a + "/robustness?ttl=" + ttl.String() }}
	for i, m := range members {
		st.logs[fmt.Sprintf("m%d", i)] = m.LogPath()
	}
	st.faults = []fault{
		{name: "member-loss", onTarget: true, storeWide: true, inject: func(w *world, p *proc, frac float64) {
			// kill -9 of the member the leader talks to, down for ½ to 3
			// TTLs: the leader cannot renew; the others' members elect.
			c.down(c.members[p.node], between(0.5, 3, frac))
		}},
		{name: "member-restart", onTarget: true, storeWide: true, inject: func(w *world, p *proc, _ float64) {
			// SIGTERM (etcd shuts down gracefully, handing Raft leadership
			// over if it has it) and a start at once, as in a rolling
			// restart.
			c.restart(c.members[p.node])
		}},
		{name: "member-partition", onTarget: true, storeWide: true, inject: func(w *world, p *proc, frac float64) {
			// The leader's member is cut off from its peers for ¼ to 3
			// TTLs but keeps serving its clients, as a minority member
			// does: renewals through it hang or fail.
			ctx, cancel := ctxBound()
			defer cancel()
			m := c.members[p.node]
			if err := m.Isolate(ctx); err != nil {
				w.t.Fatalf("isolate %s: %v", m.Addr, err)
			}
			time.Sleep(between(0.25, 3, frac))
			if err := m.Rejoin(ctx); err != nil {
				w.t.Fatalf("rejoin %s: %v", m.Addr, err)
			}
			c.healthy()
		}},
		{name: "raft-leader-loss", inject: func(w *world, _ *proc, frac float64) {
			c.down(c.members[c.raftLeader()], between(0.5, 3, frac))
		}},
		{name: "raft-leader-change", inject: func(w *world, _ *proc, _ float64) {
			c.moveLeader()
		}},
	}
	return st
}

// down kills m (SIGKILL), waits d, starts it again and waits until the
// cluster is healthy.
func (c *etcdCluster) down(m *teststore.Etcd, d time.Duration) {
	ctx, cancel := ctxBound()
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		c.t.Fatalf("kill etcd member %s: %v", m.Addr, err)
	}
	time.Sleep(d)
	if err := m.Start(ctx); err != nil {
		c.t.Fatalf("start etcd member %s: %v", m.Addr, err)
	}
	c.healthy()
}

// restart stops m with SIGTERM and starts it again at once.
func (c *etcdCluster) restart(m *teststore.Etcd) {
	ctx, cancel := ctxBound()
	defer cancel()
	if err := terminate(ctx, m.Process); err != nil {
		c.t.Fatalf("etcd member %s: %v", m.Addr, err)
	}
	if err := m.Start(ctx); err != nil {
		c.t.Fatalf("start etcd member %s: %v", m.Addr, err)
	}
	c.healthy()
}

// healthy waits until every member reports healthy (the cluster has a
// Raft leader and each member serves linearizable reads).
func (c *etcdCluster) healthy() { teststore.WaitEtcdHealthy(c.t, c.members) }

// raftLeader returns the index of the member that is the Raft leader.
func (c *etcdCluster) raftLeader() int {
	deadline := time.Now().Add(waitBound)
	for time.Now().Before(deadline) {
		for i, m := range c.members {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := c.admin.Status(ctx, m.Addr)
			cancel()
			if err == nil && resp.Leader != 0 && resp.Leader == resp.Header.MemberId {
				return i
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("no etcd Raft leader within %v", waitBound)
	return -1
}

// moveLeader moves Raft leadership to the next member (MoveLeader, what
// `etcdctl move-leader` does) and waits until that member leads.
func (c *etcdCluster) moveLeader() {
	ctx, cancel := ctxBound()
	defer cancel()
	from := c.raftLeader()
	to := (from + 1) % len(c.members)
	status, err := c.admin.Status(ctx, c.members[to].Addr)
	if err != nil {
		c.t.Fatalf("status of etcd member %s: %v", c.members[to].Addr, err)
	}
	// MoveLeader must reach the leader itself.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.members[from].Addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatalf("etcd client of the leader: %v", err)
	}
	defer cli.Close()
	if _, err := cli.MoveLeader(ctx, status.Header.MemberId); err != nil {
		c.t.Fatalf("move etcd Raft leadership from %s to %s: %v", c.members[from].Addr, c.members[to].Addr, err)
	}
	for c.raftLeader() != to {
		if ctx.Err() != nil {
			c.t.Fatalf("etcd Raft leadership did not move to %s within %v", c.members[to].Addr, waitBound)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pause freezes every member.
func (c *etcdCluster) Pause(ctx context.Context) error {
	return c.each(func(m *teststore.Etcd) error { return m.Pause(ctx) })
}

// Resume continues every member.
func (c *etcdCluster) Resume(ctx context.Context) error {
	return c.each(func(m *teststore.Etcd) error { return m.Resume(ctx) })
}

// Stop kills every member.
func (c *etcdCluster) Stop(ctx context.Context) error {
	return c.each(func(m *teststore.Etcd) error { return m.Stop(ctx) })
}

// Start starts every member and waits until the cluster is healthy.
func (c *etcdCluster) Start(ctx context.Context) error {
	if err := c.each(func(m *teststore.Etcd) error { return m.Start(ctx) }); err != nil {
		return err
	}
	c.healthy()
	return nil
}

func (c *etcdCluster) each(op func(*teststore.Etcd) error) error {
	var errs []error
	for _, m := range c.members {
		errs = append(errs, op(m))
	}
	return errors.Join(errs...)
}

// startConsulCluster starts 3 servers and 2 client agents; candidates
// alternate between the client agents.
func startConsulCluster(t *testing.T) *store {
	c := teststore.StartConsulCluster(t, teststore.ConsulClusterOptions{})
	var agents []string
	for _, a := range c.Clients {
		agents = append(agents, a.Addr)
	}
	st := &store{name: "consul-cluster", Store: c.ServerStore(), nodes: agents, logs: map[string]string{},
		// Consul invalidates a session between TTL and 2×TTL.
		expiryLag: ttl + 500*time.Millisecond,
		url: func(a string) string {
			return "consul://" + a + "?prefix=robustness&min_ttl=" + c.MinTTL.String() + "&ttl=" + ttl.String()
		}}
	for _, a := range c.Agents() {
		st.logs[a.Node] = a.LogPath()
	}
	// alive waits until agent a is a live member again after a start.
	alive := func(w *world, ctx context.Context, a *teststore.ConsulAgent) {
		if err := c.WaitMemberStatus(ctx, a.Node, "alive"); err != nil {
			w.t.Fatalf("consul agent %s: %v", a.Node, err)
		}
	}
	start := func(w *world, ctx context.Context, a *teststore.ConsulAgent) {
		if err := a.Start(ctx); err != nil {
			w.t.Fatalf("start consul agent %s: %v", a.Node, err)
		}
		alive(w, ctx, a)
	}
	// server returns a server: the Raft leader (leader) or, picked by
	// frac, one of the others.
	server := func(w *world, ctx context.Context, leader bool, frac float64) *teststore.ConsulAgent {
		l, err := c.Leader(ctx)
		if err != nil {
			w.t.Fatalf("consul Raft leader: %v", err)
		}
		if leader {
			return l
		}
		var others []*teststore.ConsulAgent
		for _, s := range c.Servers {
			if s != l {
				others = append(others, s)
			}
		}
		return others[min(int(frac*float64(len(others))), len(others)-1)]
	}
	st.faults = []fault{
		{name: "agent-loss", onTarget: true, storeWide: true, inject: func(w *world, p *proc, frac float64) {
			// kill -9 of the client agent the leader talks to, down for ½
			// to 3 TTLs, then started again on its data: nobody forces
			// it out.
			ctx, cancel := ctxBound()
			defer cancel()
			a := c.Clients[p.node]
			if err := a.Stop(ctx); err != nil {
				w.t.Fatalf("kill consul agent %s: %v", a.Node, err)
			}
			time.Sleep(between(0.5, 3, frac))
			start(w, ctx, a)
		}},
		{name: "agent-leave", onTarget: true, storeWide: true, inject: func(w *world, p *proc, frac float64) {
			// The leader's client agent leaves the cluster gracefully
			// (`consul leave`): its node is deregistered, which must not
			// end any session (they belong to no candidate's node). It
			// joins again 0 to 1.5 TTLs after it has left.
			ctx, cancel := ctxBound()
			defer cancel()
			a := c.Clients[p.node]
			if err := a.Leave(ctx); err != nil {
				w.t.Fatalf("consul agent %s: %v", a.Node, err)
			}
			if err := c.WaitMemberStatus(ctx, a.Node, "left"); err != nil {
				w.t.Fatalf("consul agent %s: %v", a.Node, err)
			}
			time.Sleep(between(0, 1.5, frac))
			start(w, ctx, a)
		}},
		{name: "member-loss", inject: func(w *world, _ *proc, frac float64) {
			// kill -9 of a server that is not the Raft leader, down for ½
			// to 3 TTLs: a quorum remains.
			ctx, cancel := ctxBound()
			defer cancel()
			s := server(w, ctx, false, frac)
			if err := s.Stop(ctx); err != nil {
				w.t.Fatalf("kill consul server %s: %v", s.Node, err)
			}
			time.Sleep(between(0.5, 3, frac))
			start(w, ctx, s)
		}},
		{name: "member-restart", inject: func(w *world, _ *proc, frac float64) {
			// SIGTERM of a server (the leader one time in three) and a
			// start at once, as in a rolling restart.
			ctx, cancel := ctxBound()
			defer cancel()
			s := server(w, ctx, frac < 1.0/3, frac)
			if err := terminate(ctx, s.Process); err != nil {
				w.t.Fatalf("consul server %s: %v", s.Node, err)
			}
			start(w, ctx, s)
		}},
		{name: "raft-leader-loss", inject: func(w *world, _ *proc, frac float64) {
			ctx, cancel := ctxBound()
			defer cancel()
			s := server(w, ctx, true, frac)
			if err := s.Stop(ctx); err != nil {
				w.t.Fatalf("kill consul server %s: %v", s.Node, err)
			}
			time.Sleep(between(0.5, 3, frac))
			start(w, ctx, s)
		}},
		{name: "raft-leader-change", inject: func(w *world, _ *proc, _ float64) {
			// The new leader resets every session timer and reconciles
			// the catalog with Serf's members.
			ctx, cancel := ctxBound()
			defer cancel()
			if _, _, err := c.TransferLeader(ctx); err != nil {
				w.t.Fatalf("consul: %v", err)
			}
		}},
	}
	return st
}

// terminate sends p SIGTERM and waits until it has exited.
func terminate(ctx context.Context, p *testserver.Process) error {
	pid := p.PID()
	if pid == 0 {
		return errors.New("not running")
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	for p.PID() != 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("did not exit after SIGTERM: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
