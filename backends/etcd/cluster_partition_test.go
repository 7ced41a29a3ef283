package etcd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
	"github.com/electionkit/election/internal/history"
	"github.com/electionkit/election/internal/teststore"
)

// TestClusterMinorityPartition: three candidates on a three-member cluster,
// each attached to a member of its own. The member of the leading
// candidate is cut off from the other two (it keeps serving its client,
// as a minority member does): the leader loses, one of the others is
// elected through the majority, and no two terms overlap. After the
// partition heals, the member of the leading candidate is killed and
// restarted, with the same outcome. The history checker judges every
// term; fences strictly increase.
func TestClusterMinorityPartition(t *testing.T) {
	members := teststore.StartEtcdCluster(t, 3, teststore.EtcdOptions{PeerProxies: true})
	ctx := testCtx(t)
	log := history.New(time.Now)
	const name = "minority"
	var candidates []*election.Candidate
	var electors []*election.Elector
	for i, m := range members {
		b := newBackend(t, etcd.Config{Endpoints: []string{m.Addr}, DialTimeout: 5 * time.Second})
		el, err := election.New(b, election.Config{TTL: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		electors = append(electors, el)
		c, err := el.NewCandidate(election.CandidateConfig{Name: name, ID: fmt.Sprintf("on-m%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		c.AddHandlers(log.Handler(fmt.Sprintf("on-m%d", i)))
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
			t.Errorf("saw %d terms, want at least 3 (one at start, one per fault)", n)
		}
	}()

	leaderIndex := func(when string) int {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			for i, c := range candidates {
				if c.IsLeader() {
					return i
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no leader within 60s", when)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// newLeader waits until a candidate other than old leads and old does
	// not: the handoff the fault must cause.
	newLeader := func(old int, when string) int {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			for i, c := range candidates {
				if i != old && c.IsLeader() && !candidates[old].IsLeader() {
					return i
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no candidate but on-m%d leads within 60s (on-m%d leads: %v)", when, old, old, candidates[old].IsLeader())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	l := leaderIndex("at start")
	cut := time.Now()
	if err := members[l].Isolate(ctx); err != nil {
		t.Fatal(err)
	}
	next := newLeader(l, "member of the leader cut off")
	t.Logf("m%d cut off: on-m%d leads after %v", l, next, time.Since(cut).Round(time.Millisecond))
	if err := members[l].Rejoin(ctx); err != nil {
		t.Fatal(err)
	}
	teststore.WaitEtcdHealthy(t, members)

	l = leaderIndex("after the partition healed")
	killed := time.Now()
	if err := members[l].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	next = newLeader(l, "member of the leader killed")
	t.Logf("m%d killed: on-m%d leads after %v", l, next, time.Since(killed).Round(time.Millisecond))
	if err := members[l].Start(ctx); err != nil {
		t.Fatal(err)
	}
	teststore.WaitEtcdHealthy(t, members)
	leaderIndex("after the restart")
}
