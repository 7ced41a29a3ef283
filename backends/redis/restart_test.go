package redis

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/electionkit/election"
)

func TestFenceIncreasesAcrossRestart(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 60*time.Second)
	ttl := 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"quarantine", Config{}},
		{"no-quarantine", Config{NoQuarantine: true}}, // TIME alone keeps fences increasing
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t, srv.client(t), tc.cfg)
			s := openSession(t, ctx, b, ttl)
			name := "fenced-" + tc.name
			var last uint64
			for i := range 5 {
				c := claim(t, ctx, s, request(name, "a"))
				if c.Fence <= last {
					t.Fatalf("term %d: fence %d not above %d", i, c.Fence, last)
				}
				last = c.Fence
				if err := s.Release(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			// Fences are server TIME in µs (or just above): check the scale
			// against this machine's clock, generously.
			if now := uint64(time.Now().UnixMicro()); last+uint64(time.Minute.Microseconds()) < now || last > now+uint64(time.Minute.Microseconds()) {
				t.Errorf("fence %d is not a µs timestamp near %d", last, now)
			}

			srv.restart(t, ctx)
			if n, err := srv.client(t).DBSize(ctx).Result(); err != nil || n != 0 {
				t.Fatalf("after restart DBSIZE = %d, %v; want an empty server", n, err)
			}
			// The session key was lost with everything else: the core
			// opens a new session on ErrSessionExpired, and so does this.
			if _, err := s.Claim(ctx, request(name, "b")); !errors.Is(err, election.ErrSessionExpired) {
				t.Fatalf("Claim through a session the restart lost = %v, want ErrSessionExpired", err)
			}
			s = openSession(t, ctx, b, ttl)
			c := claim(t, ctx, s, request(name, "b"))
			if c.Fence <= last {
				t.Fatalf("fence after restart %d, not above %d from before it", c.Fence, last)
			}
			t.Logf("fence before restart %d, after %d", last, c.Fence)
		})
	}
}

func TestQuarantineAfterStart(t *testing.T) {
	beforeStart := time.Now()
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	b := newBackend(t, srv.client(t), Config{})
	ttl := 2 * time.Second
	s := openSession(t, ctx, b, ttl)

	_, err := s.Claim(ctx, request("early", "a"))
	left, ok := isQuarantine(err)
	var taken *election.TakenError
	if !ok || !errors.As(err, &taken) || taken.Holder.Election != "early" {
		t.Fatalf("Claim right after redis-server started = %v, want the quarantine TakenError", err)
	}
	if left <= 0 || left > ttl+2*time.Second {
		t.Errorf("quarantine ExpiresIn = %v, want in (0, TTL + 2s] (uptime is whole seconds)", left)
	}
	if _, err := b.Leader(ctx, "early"); !errors.Is(err, election.ErrNoLeader) {
		t.Errorf("Leader during the quarantine = %v, want ErrNoLeader", err)
	}
	claim(t, ctx, s, request("early", "a"))
	if since := time.Since(beforeStart); since < ttl {
		t.Errorf("claimed %v after redis-server was started, before the quarantine of %v ended", since, ttl)
	}
	// Once the server is out of quarantine, a never-seen election elects
	// at once.
	if _, err := s.Claim(ctx, request("late", "a")); err != nil {
		t.Errorf("Claim of a new election after the quarantine = %v", err)
	}
}

// overlapRun is one measured restart: how long the old leader could still
// act after the new one was elected.
type overlapRun struct {
	overlap time.Duration // > 0: two leaders at once
	gap     time.Duration // time from the old leader's deadline to the new claim (negative when overlapping)
	elected time.Duration // from the kill to the new leader's claim
}

// measureRestartOverlap elects a leader that renews like the core (its local
// deadline is the send time of its last successful renewal plus TTL), kills
// redis-server right after a renewal, restarts it empty, and lets a follower
// claim as fast as it can.
func measureRestartOverlap(t *testing.T, cfg Config, ttl time.Duration) overlapRun {
	t.Helper()
	srv := startServer(t)
	ctx := testContext(t, 60*time.Second)
	leader := newBackend(t, srv.client(t), cfg)
	follower := newBackend(t, srv.client(t), cfg)
	ls, fs := openSession(t, ctx, leader, ttl), openSession(t, ctx, follower, ttl)
	held := claim(t, ctx, ls, request("overlap", "old"))

	sent := time.Now()
	if err := ls.Renew(ctx, []election.Claim{held}); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	var mu sync.Mutex
	lastRenew := sent
	killed := time.Now()
	srv.restart(t, ctx)

	// The old leader keeps renewing; it must never succeed on the empty server.
	rctx, stopRenew := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for rctx.Err() == nil {
			sent := time.Now()
			if err := ls.Renew(rctx, []election.Claim{held}); err == nil {
				mu.Lock()
				lastRenew = sent
				mu.Unlock()
			}
			time.Sleep(ttl / 10)
		}
	}()
	var claimSent time.Time
	for {
		claimSent = time.Now()
		_, err := fs.Claim(ctx, request("overlap", "new"))
		if err == nil {
			break
		}
		if errors.Is(err, election.ErrSessionExpired) {
			// The restart lost the follower's session key: open another,
			// as the core does.
			if s, err := follower.OpenSession(ctx, ttl); err == nil {
				fs = s
				t.Cleanup(func() { _ = s.Close(context.Background()) })
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("follower never elected: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopRenew()
	wg.Wait()
	mu.Lock()
	deadline := lastRenew.Add(ttl)
	mu.Unlock()
	run := overlapRun{gap: claimSent.Sub(deadline), elected: claimSent.Sub(killed)}
	run.overlap = max(0, -run.gap)
	return run
}

func TestRestartOverlap(t *testing.T) {
	ttl := time.Second
	t.Run("quarantine", func(t *testing.T) {
		run := measureRestartOverlap(t, Config{}, ttl)
		t.Logf("TTL %v: overlap %v; new leader's claim sent %v after the old leader's deadline, %v after the kill",
			ttl, run.overlap, run.gap, run.elected)
		if run.overlap != 0 {
			t.Errorf("two leaders for %v after a restart without persistence", run.overlap)
		}
		if run.elected > ttl+10*time.Second {
			t.Errorf("new leader elected %v after the kill, want about one TTL", run.elected)
		}
	})
	t.Run("no-quarantine", func(t *testing.T) {
		// What the quarantine prevents; only liveness is asserted here.
		run := measureRestartOverlap(t, Config{NoQuarantine: true}, ttl)
		t.Logf("TTL %v without quarantine: overlap %v (two leaders at once), new leader %v after the kill",
			ttl, run.overlap, run.elected)
		if run.elected > 10*time.Second {
			t.Errorf("new leader elected %v after the kill", run.elected)
		}
	})
}
