package consul

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

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
