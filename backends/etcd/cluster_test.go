package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
	"github.com/electionkit/election/internal/history"
)

// TestClusterLeaderKill: on a three-member cluster, the member that is the
// raft leader is killed (and later restarted) three times while three
// elections run with three candidates each; elections go on (a forced
// handoff in every election after each kill) and no two terms of an
// election ever overlap, fences strictly increasing.
func TestClusterLeaderKill(t *testing.T) {
	const rounds = 3
	members := startCluster(t, 3)
	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, m.addr)
	}
	ctx := testCtx(t)
	admin := rawClient(t, endpoints...)
	log := history.New(time.Now)
	names := []string{"cluster-0", "cluster-1", "cluster-2"}
	byName := map[string][]*election.Candidate{}
	var electors []*election.Elector
	for node := range 3 {
		b := newBackend(t, etcd.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second})
		el, err := election.New(b, election.Config{TTL: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		electors = append(electors, el)
		for _, name := range names {
			c, err := el.NewCandidate(election.CandidateConfig{Name: name, ID: fmt.Sprintf("node-%d", node)})
			if err != nil {
				t.Fatal(err)
			}
			c.AddHandlers(log.Handler(fmt.Sprintf("node-%d", node)))
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			byName[name] = append(byName[name], c)
		}
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, cs := range byName {
			for _, c := range cs {
				_ = c.Stop(stopCtx)
			}
		}
		for _, el := range electors {
			_ = el.Close(stopCtx)
		}
		if n, want := log.Report(t, history.Bounds{}), len(names)*(1+rounds); n < want {
			t.Errorf("saw %d terms, want at least %d", n, want)
		}
	}()
	waitLeaders := func(when string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for _, name := range names {
			for leaderAmong(byName[name]) == nil {
				if time.Now().After(deadline) {
					t.Fatalf("%s: no leader of %s within 60s", when, name)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	waitLeaders("at start")

	for round := range rounds {
		leader := raftLeader(ctx, t, admin, members)
		killed := time.Now()
		if err := leader.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed raft leader %s", round, leader.addr)
		waitLeaders(fmt.Sprintf("round %d, after killing the raft leader", round))
		// Elections go on: once the cluster has a new raft leader, a forced
		// handoff finds a new election leader. The release may still fail
		// while clients fail over (Resign then reports ErrUnavailable and
		// the claim ends by expiry instead): safe, only slower.
		newLeader := raftLeader(ctx, t, admin, members)
		t.Logf("round %d: raft leader %s after %v", round, newLeader.addr, time.Since(killed).Round(time.Millisecond))
		for _, name := range names {
			before := log.Count(name)
			if l := leaderAmong(byName[name]); l != nil {
				err := l.Resign(ctx)
				if err != nil && !errors.Is(err, election.ErrUnavailable) && !errors.Is(err, election.ErrNotLeader) {
					t.Fatalf("Resign: %v", err)
				}
				if err != nil {
					t.Logf("round %d: Resign in %s: %v", round, name, err)
				}
			}
			deadline := time.Now().Add(60 * time.Second)
			for log.Count(name) == before {
				if time.Now().After(deadline) {
					t.Fatalf("round %d: no new term of %s within 60s of a Resign", round, name)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		t.Logf("round %d: new terms in all %d elections %v after the kill", round, len(names), time.Since(killed).Round(time.Millisecond))
		if err := leader.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitHealthy(t, members)
	}
	waitLeaders("at the end")
}

// TestWatchFailsWithoutQuorum: a watch on a member that loses its quorum
// ends with an error wrapping ErrUnavailable instead of going silent.
func TestWatchFailsWithoutQuorum(t *testing.T) {
	members := startCluster(t, 3)
	ctx := testCtx(t)
	b := newBackend(t, etcd.Config{Endpoints: []string{members[0].addr}})
	events, err := b.Watch(ctx, "quorum")
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Err != nil || ev.Leader != nil {
		t.Fatalf("first event = %s, want vacant", holder(ev))
	}
	for _, m := range members[1:] {
		if err := m.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ev := nextEvent(t, events)
	if !errors.Is(ev.Err, election.ErrUnavailable) {
		t.Fatalf("event after losing quorum = %s, want an error wrapping ErrUnavailable", holder(ev))
	}
	t.Logf("watch ended with: %v", ev.Err)
	if _, ok := <-events; ok {
		t.Fatalf("channel open after the error event")
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

// raftLeader returns the running member that is the raft leader.
func raftLeader(ctx context.Context, t *testing.T, admin *clientv3.Client, members []*etcdServer) *etcdServer {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range members {
			if m.PID() == 0 {
				continue
			}
			statusCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := admin.Status(statusCtx, m.addr)
			cancel()
			if err == nil && resp.Leader != 0 && resp.Leader == resp.Header.MemberId {
				return m
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no raft leader among the members within 30s")
	return nil
}
