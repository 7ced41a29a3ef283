package redis

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
)

func TestWaitReplicas(t *testing.T) {
	primary := startServer(t, "--repl-diskless-sync-delay", "0") // no 5s wait for more replicas
	host, port, _ := strings.Cut(primary.addr, ":")
	replica := startServer(t, "--replicaof", host, port)
	ctx := testContext(t, 60*time.Second)
	admin := primary.client(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := admin.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not online within 30s: %s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}

	b := newBackend(t, primary.client(t), Config{Quarantine: 50 * time.Millisecond, WaitReplicas: 1, WaitTimeout: 300 * time.Millisecond})
	s := openSession(t, ctx, b, 5*time.Second)
	held := claim(t, ctx, s, request("replicated", "a"))
	if err := s.Renew(ctx, []election.Claim{held}); err != nil {
		t.Fatalf("Renew with an online replica: %v", err)
	}
	if l, err := b.Leader(ctx, "replicated"); err != nil || l.Fence != held.Fence {
		t.Fatalf("Leader = %+v, %v", l, err)
	}

	// A frozen replica acknowledges nothing: the write stays on the primary,
	// and the caller hears that its durability is unknown.
	if err := replica.proc.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	defer replica.proc.Resume(ctx)
	err := s.Renew(ctx, []election.Claim{held})
	if !errors.Is(err, election.ErrUnavailable) || !errors.Is(err, errWaitShort) {
		t.Errorf("Renew with a frozen replica = %v, want ErrUnavailable (too few replicas)", err)
	}
	if err := s.Release(ctx, held); err != nil {
		t.Fatal(err)
	}
	_, err = s.Claim(ctx, request("replicated", "b"))
	if !errors.Is(err, election.ErrUnavailable) || !errors.Is(err, errWaitShort) {
		t.Errorf("Claim with a frozen replica = %v, want ErrUnavailable (too few replicas)", err)
	}
	if l, err := b.Leader(ctx, "replicated"); err != nil || l.ID != "b" {
		t.Errorf("the unreplicated claim is not on the primary: %+v, %v", l, err)
	}
}
