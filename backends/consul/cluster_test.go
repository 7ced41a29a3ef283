package consul

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/history"
	"github.com/electionkit/election/internal/teststore"
)

// clusterBackend returns a Backend of agent a of a teststore cluster,
// closed when the test ends.
func clusterBackend(t *testing.T, a *teststore.ConsulAgent) *Backend {
	t.Helper()
	b, err := New(Config{Address: a.Addr, MinTTL: testMinTTL, WatchWait: 5 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// clusterCandidate starts a candidate of election name with ID id on a
// Backend of agent a; its terms and events go to hist under id, and its
// events to also, if not nil.
func clusterCandidate(t *testing.T, a *teststore.ConsulAgent, ttl time.Duration, hist *history.Recorder, name, id string, also func(election.Event)) *election.Candidate {
	t.Helper()
	record := hist.OnEvent(id)
	onEvent := func(ev election.Event) {
		record(ev)
		if also != nil {
			also(ev)
		}
	}
	el, err := election.New(clusterBackend(t, a), election.Config{TTL: ttl, OnEvent: onEvent})
	if err != nil {
		t.Fatalf("election.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*ttl+5*time.Second)
		defer cancel()
		_ = el.Close(ctx)
	})
	c, err := el.NewCandidate(election.CandidateConfig{Name: name, ID: id, Handlers: []election.Handler{hist.Handler(id)}})
	if err != nil {
		t.Fatalf("NewCandidate: %v", err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatalf("Start %s: %v", id, err)
	}
	return c
}

// nodeEventTTL is the TTL of TestNodeEvents: long enough that a leader cut
// off from its agent still has most of it left when the node event ends
// its session's node, which is what made two leaders before sessions had a
// node of their own (a kill -9 is marked failed about 1.5s later here).
const nodeEventTTL = 4 * time.Second

// TestNodeEvents: candidate A on client agent a1 leads, B on a2 waits;
// then a1 leaves the cluster gracefully, or gets SIGTERM (a graceful leave
// too, leave_on_terminate), or is killed and forced out by an operator
// (force-leave once Consul marks it failed). Each of these deregisters
// a1's node, which destroys every session on that node. B must not be
// elected while A still leads: the history checker finds any overlap of
// their handlers, and B's election must come no earlier than TTL after A's
// last renewal (only the TTL ends A's session, not the node event).
func TestNodeEvents(t *testing.T) {
	for _, variant := range []struct {
		name  string
		event func(ctx context.Context, c *teststore.ConsulCluster, a1 *teststore.ConsulAgent) error
	}{
		{"Leave", func(ctx context.Context, _ *teststore.ConsulCluster, a1 *teststore.ConsulAgent) error {
			return a1.Leave(ctx)
		}},
		{"SIGTERM", func(ctx context.Context, _ *teststore.ConsulCluster, a1 *teststore.ConsulAgent) error {
			return a1.Terminate(ctx)
		}},
		{"KillForceLeave", func(ctx context.Context, c *teststore.ConsulCluster, a1 *teststore.ConsulAgent) error {
			if err := a1.Stop(ctx); err != nil {
				return err
			}
			if err := c.WaitMemberStatus(ctx, a1.Node, "failed"); err != nil {
				return err
			}
			return c.ForceLeave(ctx, a1.Node)
		}},
	} {
		t.Run(variant.name, func(t *testing.T) {
			c := teststore.StartConsulCluster(t, teststore.ConsulClusterOptions{MinTTL: testMinTTL})
			a1, a2 := c.Clients[0], c.Clients[1]
			hist := history.New(time.Now)
			var lastRenew atomic.Pointer[time.Time]
			ca := clusterCandidate(t, a1, nodeEventTTL, hist, "node-event", "a", func(ev election.Event) {
				if ev.Kind == election.EventRenewed && ev.Count > 0 {
					lastRenew.Store(&ev.Time)
				}
			})
			waitFor(t, 30*time.Second, "a to lead", ca.IsLeader)
			cb := clusterCandidate(t, a2, nodeEventTTL, hist, "node-event", "b", nil)
			waitFor(t, 30*time.Second, "a renewal of a's claim", func() bool { return lastRenew.Load() != nil })
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()

			heal := hist.Fault("a", variant.name+" of a1")
			begin := time.Now()
			if err := variant.event(ctx, c, a1); err != nil {
				t.Fatalf("%s: %v", variant.name, err)
			}
			if err := c.WaitMemberStatus(ctx, a1.Node, "left"); err != nil {
				t.Fatal(err)
			}
			left := time.Since(begin)
			waitFor(t, 2*time.Minute, "b to lead", cb.IsLeader)
			heal()
			term, _ := cb.Term()
			since := term.Since.Sub(*lastRenew.Load())
			t.Logf("%s: a1 left %v after the event began; b elected %v after the event, %v after a's last renewal (TTL %v)",
				variant.name, left.Round(time.Millisecond), term.Since.Sub(begin).Round(time.Millisecond),
				since.Round(time.Millisecond), nodeEventTTL)
			if ca.IsLeader() {
				t.Errorf("a still leads after b was elected")
			}
			hist.Report(t, history.Bounds{})
			if since < nodeEventTTL {
				t.Fatalf("b elected %v after a's last renewal, before the TTL (%v): the node event ended a's session", since, nodeEventTTL)
			}
		})
	}
}

// TestClusterFaults: candidate A on client agent a1 leads, B on a2 waits,
// through faults that must not cost A its claim, or, if they do, must not
// give two leaders: the history checker runs after each.
//
//   - RaftLeaderChange: Raft leadership moves between servers twice. The
//     new leader resets every session timer (to 2×TTL) and reconciles the
//     catalog with Serf's members at once; the session node, which is no
//     Serf member, must survive that (reconciliation reaps only nodes that
//     carry Serf's health check), and A keeps its term.
//   - AgentRestart: a1 is killed (kill -9) and started again on its data,
//     without any operator action; A's renewals fail meanwhile. Whether A
//     keeps leading depends on how long the restart takes against A's
//     deadline; either way no two leaders overlap, and afterwards one of
//     them leads.
func TestClusterFaults(t *testing.T) {
	const ttl = nodeEventTTL
	t.Run("RaftLeaderChange", func(t *testing.T) {
		c := teststore.StartConsulCluster(t, teststore.ConsulClusterOptions{MinTTL: testMinTTL})
		hist := history.New(time.Now)
		ca := clusterCandidate(t, c.Clients[0], ttl, hist, "leader-change", "a", nil)
		waitFor(t, 30*time.Second, "a to lead", ca.IsLeader)
		first, _ := ca.Term()
		cb := clusterCandidate(t, c.Clients[1], ttl, hist, "leader-change", "b", nil)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		for range 2 {
			heal := hist.Fault("", "Raft leader transfer")
			old, leader, err := c.TransferLeader(ctx)
			heal()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("Raft leader moved from %s to %s", old.Node, leader.Node)
			// Longer than a TTL, so that a session the new leader lost
			// or destroyed would have shown.
			time.Sleep(ttl + time.Second)
		}
		if term, ok := ca.Term(); !ok || term.Fence != first.Fence {
			t.Fatalf("a's term after two Raft leader changes = %+v, %v; want its first term (fence %d)", term, ok, first.Fence)
		}
		if cb.IsLeader() {
			t.Fatalf("b leads")
		}
		raw := rawClient(t, c.Clients[1])
		if node, _, err := raw.Catalog().Node("electionkit-sessions", nil); err != nil || node == nil {
			t.Fatalf("session node after two Raft leader changes: %+v, %v", node, err)
		}
		hist.Report(t, history.Bounds{})
	})

	t.Run("AgentRestart", func(t *testing.T) {
		c := teststore.StartConsulCluster(t, teststore.ConsulClusterOptions{MinTTL: testMinTTL})
		hist := history.New(time.Now)
		a1 := c.Clients[0]
		ca := clusterCandidate(t, a1, ttl, hist, "agent-restart", "a", nil)
		waitFor(t, 30*time.Second, "a to lead", ca.IsLeader)
		first, _ := ca.Term()
		cb := clusterCandidate(t, c.Clients[1], ttl, hist, "agent-restart", "b", nil)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		heal := hist.Fault("a", "kill -9 and restart of a1")
		begin := time.Now()
		if err := a1.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a1.Start(ctx); err != nil {
			t.Fatal(err)
		}
		heal()
		t.Logf("a1 back %v after the kill", time.Since(begin).Round(time.Millisecond))
		waitFor(t, 2*time.Minute, "a leader after the restart", func() bool { return ca.IsLeader() || cb.IsLeader() })
		if term, ok := ca.Term(); ok && term.Fence == first.Fence {
			t.Logf("a kept its term across the restart")
		} else {
			t.Logf("a lost its term during the restart; now a leads: %v, b leads: %v", ca.IsLeader(), cb.IsLeader())
		}
		hist.Report(t, history.Bounds{})
	})
}

// rawClient returns a raw API client of agent a, for the tests' own look at
// the store.
func rawClient(t *testing.T, a *teststore.ConsulAgent) *api.Client {
	t.Helper()
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = a.Addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
