package consul

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// TestRestart kills the Consul server and starts it again on the same data
// directory: watches fail with ErrUnavailable while it is down, the session
// and its claim survive (Consul restarts session timers at 2×TTL), and
// fences keep increasing because the Raft index is persisted.
func TestRestart(t *testing.T) {
	a := startAgent(t, agentOptions{})
	b, watcher := a.backend(t, nil), a.backend(t, nil)
	ttl := 5 * time.Second // outlives the restart, so the session must survive it
	s := openSession(t, b, ttl)
	before := claim(t, s, "restart", "t1", "one")

	ch, err := watcher.Watch(t.Context(), "restart")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch, 10*time.Second); ev.Leader == nil || ev.Leader.Fence != before.Fence {
		t.Fatalf("first event = %+v", ev)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	ev := next(t, ch, 20*time.Second)
	if !errors.Is(ev.Err, election.ErrUnavailable) {
		t.Fatalf("watch event with the server down = %+v, want Err wrapping ErrUnavailable", ev)
	}
	if _, ok := <-ch; ok {
		t.Fatalf("watch not closed after its error event")
	}
	if err := s.Renew(ctx, []election.Claim{before}); !errors.Is(err, election.ErrUnavailable) {
		t.Fatalf("Renew with the server down = %v, want ErrUnavailable", err)
	}

	begin := time.Now()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restart: ready again in %v (first start took %v)", time.Since(begin).Round(time.Millisecond), a.started.Round(time.Millisecond))

	if err := s.Renew(ctx, []election.Claim{before}); err != nil {
		t.Fatalf("Renew after restart = %v: the session or its claim did not survive", err)
	}
	if l, err := b.Leader(ctx, "restart"); err != nil || l.Fence != before.Fence {
		t.Fatalf("Leader after restart = %+v, %v; want fence %d", l, err, before.Fence)
	}
	if err := s.Release(ctx, before); err != nil {
		t.Fatal(err)
	}
	s2 := openSession(t, b, testMinTTL)
	after := claim(t, s2, "restart", "t2", "two")
	if after.Fence <= before.Fence {
		t.Fatalf("fence after restart %d is not above %d from before", after.Fence, before.Fence)
	}
	t.Logf("fence %d before the restart, %d after", before.Fence, after.Fence)
}
