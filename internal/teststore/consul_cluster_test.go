package teststore

import (
	"context"
	"testing"
	"time"
)

// TestConsulCluster forms the cluster and exercises each control once: a
// Raft leader change, a client's graceful leave and restart, a client's
// SIGTERM and restart, and a client's kill, failure and force-leave.
func TestConsulCluster(t *testing.T) {
	c := StartConsulCluster(t, ConsulClusterOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a1 := c.Clients[0]
	for _, stop := range []struct {
		name string
		fn   func(context.Context) error
	}{{"leave", a1.Leave}, {"SIGTERM", a1.Terminate}} {
		begin := time.Now()
		if err := stop.fn(ctx); err != nil {
			t.Fatalf("%s: %v", stop.name, err)
		}
		if err := c.WaitMemberStatus(ctx, a1.Node, "left"); err != nil {
			t.Fatalf("after %s: %v", stop.name, err)
		}
		t.Logf("%s: a1 left and exited %v later", stop.name, time.Since(begin).Round(time.Millisecond))
		if err := a1.Start(ctx); err != nil {
			t.Fatalf("restart after %s: %v", stop.name, err)
		}
		// Back in the member list before the next step: a kill of an agent
		// the servers still list as left leaves it "left", never "failed".
		if err := c.WaitMemberStatus(ctx, a1.Node, "alive"); err != nil {
			t.Fatalf("rejoin after %s: %v", stop.name, err)
		}
	}

	begin := time.Now()
	if err := a1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMemberStatus(ctx, a1.Node, "failed"); err != nil {
		t.Fatal(err)
	}
	failed := time.Since(begin)
	if err := c.ForceLeave(ctx, a1.Node); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMemberStatus(ctx, a1.Node, "left"); err != nil {
		t.Fatal(err)
	}
	t.Logf("kill -9: a1 failed %v later, left by force-leave %v later", failed.Round(time.Millisecond),
		(time.Since(begin) - failed).Round(time.Millisecond))
	if err := a1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	old, leader, err := c.TransferLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader moved from %s to %s", old.Node, leader.Node)

}
