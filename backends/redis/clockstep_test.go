package redis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/testserver"
)

// serverClock steps the wall clock of one redis-server, and of no other
// process, by running it under libfaketime with an offset read from a file
// at every call.
type serverClock struct {
	path string
}

// set moves the server's wall clock to the real time plus offset (whole
// seconds). The file is replaced by a rename, so the server never reads it
// half written.
func (c *serverClock) set(t *testing.T, offset time.Duration) {
	t.Helper()
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%+d\n", int64(offset/time.Second))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		t.Fatal(err)
	}
}

// libfaketime returns the path of Debian's libfaketime (package
// libfaketime, which scripts/test installs), failing the test if it is
// missing.
func libfaketime(t *testing.T) string {
	t.Helper()
	for _, pattern := range []string{
		"/usr/lib/*/faketime/libfaketime.so.1",
		"/usr/lib/faketime/libfaketime.so.1",
		"/usr/local/lib/faketime/libfaketime.so.1",
	} {
		if found, _ := filepath.Glob(pattern); len(found) > 0 {
			return found[0]
		}
	}
	t.Fatal("libfaketime.so.1 not found: scripts/test installs it (apt-get install libfaketime)")
	return ""
}

// startSteppedServer starts a redis-server (no persistence) whose wall
// clock the returned serverClock steps while it runs; it keeps the offset
// across restarts. The rest of the machine, this test included, keeps the
// real time.
//
// How it runs under libfaketime matters:
//   - DONT_FAKE_MONOTONIC=1: redis's event loop and timers run on the
//     monotonic clock; only the wall clock (gettimeofday, time, TIME,
//     expiry, uptime) is stepped.
//   - FAKETIME_NO_CACHE=1 with FAKETIME_TIMESTAMP_FILE: the offset is read
//     again at every call, so a step takes effect at once.
//   - libc.so.6 preloaded after libfaketime: Debian's redis-server gets
//     malloc from libjemalloc, whose initialisation calls clock_gettime,
//     which libfaketime intercepts while it initialises itself with
//     malloc: the server hangs or fails at start (libfaketime issue 130).
//     Preloading glibc resolves malloc to glibc's first, so jemalloc is
//     never initialised on that path.
func startSteppedServer(t *testing.T) (*server, *serverClock) {
	t.Helper()
	clock := &serverClock{path: filepath.Join(t.TempDir(), "faketimerc")}
	clock.set(t, 0)
	port := strconv.Itoa(testserver.FreePort(t))
	addr := "127.0.0.1:" + port
	proc := testserver.Start(t, testserver.Config{
		Name:   "redis-server-faketime-" + port,
		Binary: testserver.Binary(t, "redis-server"),
		Args: []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--loglevel", "warning"},
		Env: []string{
			"LD_PRELOAD=" + libfaketime(t) + ":libc.so.6",
			"FAKETIME_TIMESTAMP_FILE=" + clock.path,
			"FAKETIME_NO_CACHE=1",
			"DONT_FAKE_MONOTONIC=1",
		},
		Ready: func(ctx context.Context) error {
			c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
			defer c.Close()
			return c.Ping(ctx).Err()
		},
	})
	return &server{proc: proc, addr: addr}, clock
}

// checkServerClock fails the test unless the server's TIME is this
// machine's clock plus offset (libfaketime adds the offset exactly; the
// round trip is the only slack), and returns its uptime_in_seconds.
func checkServerClock(t *testing.T, ctx context.Context, c *goredis.Client, offset time.Duration) int64 {
	t.Helper()
	before := time.Now()
	now, err := c.Time(ctx).Result()
	after := time.Now()
	if err != nil {
		t.Fatalf("TIME: %v", err)
	}
	const slack = 10 * time.Millisecond
	if now.Before(before.Add(offset-slack)) || now.After(after.Add(offset+slack)) {
		t.Fatalf("server TIME %v is %v from this machine's clock, want %v", now, now.Sub(before), offset)
	}
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		t.Fatalf("INFO server: %v", err)
	}
	m := regexp.MustCompile(`uptime_in_seconds:(-?\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("INFO server has no uptime_in_seconds: %q", info)
	}
	uptime, _ := strconv.ParseInt(m[1], 10, 64)
	return uptime
}

// TestQuarantineOnClockStepBack: redis-server restarts empty while a leader
// holds a term, and its wall clock is stepped back by more than its uptime
// right after, so that INFO reports a negative uptime. The quarantine must
// still hold (README "Restart quarantine": a step back by D lengthens it by
// D): every claim until then is refused with the quarantine's TakenError
// (before the fix, the claim script failed every claim with an error until
// the clock caught up), and the first claim that succeeds comes no earlier
// than restart + TTL + D, after the old leader's deadline.
func TestQuarantineOnClockStepBack(t *testing.T) {
	srv, clock := startSteppedServer(t)
	ctx := testContext(t, 90*time.Second)
	admin := srv.client(t)
	const ttl = time.Second // the quarantine: the claiming session's TTL
	leader := newBackend(t, srv.client(t), Config{})
	follower := newBackend(t, srv.client(t), Config{})
	ls := openSession(t, ctx, leader, ttl)
	held := claim(t, ctx, ls, request("stepped", "old"))
	renewSent := time.Now()
	if err := ls.Renew(ctx, []election.Claim{held}); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	oldDeadline := renewSent.Add(ttl) // the core's deadline is earlier by its drift margin

	restarting := time.Now()
	srv.restart(t, ctx)
	// A step larger than the time since the restart began: the uptime
	// read by every claim below is negative until the clock catches up.
	// The margin keeps it negative for seconds more, whatever the load.
	step := time.Since(restarting).Truncate(time.Second) + 5*time.Second
	clock.set(t, -step)
	if uptime := checkServerClock(t, ctx, admin, -step); uptime >= 0 {
		t.Fatalf("server uptime %ds after its clock was stepped back %v, want negative", uptime, step)
	}

	if err := ls.Renew(ctx, []election.Claim{held}); !errors.Is(err, election.ErrSessionExpired) {
		t.Fatalf("old leader's Renew after the restart = %v, want ErrSessionExpired", err)
	}
	fs := openSession(t, ctx, follower, ttl)
	refusals := 0
	var elected time.Time
	for elected.IsZero() {
		_, err := fs.Claim(ctx, request("stepped", "new"))
		switch left, ok := isQuarantine(err); {
		case err == nil:
			elected = time.Now()
		case !ok:
			t.Fatalf("claim %v after the restart, server clock stepped back %v: %v; want the quarantine's TakenError",
				time.Since(restarting), step, err)
		case left <= 0 || left > ttl+step+2*time.Second:
			t.Fatalf("quarantine ExpiresIn %v, want in (0, TTL + step + 2s] = (0, %v]", left, ttl+step+2*time.Second)
		default:
			refusals++
			select {
			case <-time.After(min(left+time.Millisecond, ttl/3)):
			case <-ctx.Done():
				t.Fatalf("follower never elected: %v", ctx.Err())
			}
			if err := fs.Renew(ctx, nil); err != nil {
				t.Fatalf("follower's Renew while waiting out the quarantine: %v", err)
			}
		}
	}
	t.Logf("server clock stepped back %v after a restart: %d claims refused by the quarantine, elected %v after the restart began (TTL %v)",
		step, refusals, elected.Sub(restarting), ttl)
	// The server started after restarting; its quarantine ends TTL after
	// the start on its own clock, which runs step behind.
	if elected.Before(restarting.Add(ttl + step)) {
		t.Errorf("elected %v after the restart began, before TTL + step = %v: the step back shortened the quarantine",
			elected.Sub(restarting), ttl+step)
	}
	if !elected.After(oldDeadline) {
		t.Errorf("new leader elected %v before the old leader's deadline", oldDeadline.Sub(elected))
	}
}

// TestFenceAfterRestartWithClockBehind is TestFenceAfterLossAndClockBehind
// with a real clock: fences are issued, then redis-server's clock is
// stepped back an hour and it restarts empty, so its TIME is an hour
// behind the election's last fence and the store no longer has it. The
// Backend that saw the last fence issues one above it (its floor); a
// Backend that saw none issues one below it, the case README "Fences after
// a data loss" leaves to the resource's own check.
func TestFenceAfterRestartWithClockBehind(t *testing.T) {
	srv, clock := startSteppedServer(t)
	ctx := testContext(t, 60*time.Second)
	const ttl = time.Second
	seen := newBackend(t, srv.client(t), Config{})
	s := openSession(t, ctx, seen, ttl)
	before := claim(t, ctx, s, request("behind", "a"))
	if err := s.Release(ctx, before); err != nil {
		t.Fatal(err)
	}

	clock.set(t, -time.Hour)
	srv.restart(t, ctx)
	checkServerClock(t, ctx, srv.client(t), -time.Hour)

	// A process started after the loss: nothing to keep its fence up.
	fresh := newBackend(t, srv.client(t), Config{})
	fs := openSession(t, ctx, fresh, ttl)
	unseen := claim(t, ctx, fs, request("behind", "b"))
	if unseen.Fence >= before.Fence {
		t.Fatalf("a Backend that never saw fence %d got %d after the loss, not below it: the case no longer needs the floor",
			before.Fence, unseen.Fence)
	}
	if err := fs.Release(ctx, unseen); err != nil {
		t.Fatal(err)
	}

	after := claim(t, ctx, openSession(t, ctx, seen, ttl), request("behind", "a"))
	t.Logf("fence before the restart %d; after it, with the server's clock an hour behind: %d from a fresh Backend, %d from the one that saw it",
		before.Fence, unseen.Fence, after.Fence)
	if after.Fence <= before.Fence {
		t.Fatalf("fence %d after the restart with the clock behind, not above %d from before it", after.Fence, before.Fence)
	}
}

// TestClockStepForward shows what README "Clocks" says a forward step of
// the server's wall clock costs, on a real server whose clock is stepped:
//   - ttl: the leader's session key expires the step early by its clock,
//     a claim made then wins, and the two terms overlap, by at most the
//     step (the leader's deadline is its renewal's send time + TTL; its
//     key cannot expire before the renewal ran + TTL - step);
//   - quarantine: after a restart, a step forward by more than the
//     quarantine ends it at once, and a claim wins while the leader of
//     before the restart still holds by its deadline.
func TestClockStepForward(t *testing.T) {
	t.Run("ttl", func(t *testing.T) {
		srv, clock := startSteppedServer(t)
		ctx := testContext(t, 60*time.Second)
		const ttl, step = 10 * time.Second, 5 * time.Second
		leader := newBackend(t, srv.client(t), Config{NoQuarantine: true})
		follower := newBackend(t, srv.client(t), Config{NoQuarantine: true})
		ls := openSession(t, ctx, leader, ttl)
		held := claim(t, ctx, ls, request("forward", "old"))
		renewSent := time.Now()
		if err := ls.Renew(ctx, []election.Claim{held}); err != nil {
			t.Fatalf("Renew: %v", err)
		}
		clock.set(t, step)
		checkServerClock(t, ctx, srv.client(t), step)
		elected := claimUntilElected(t, ctx, follower, ttl, request("forward", "new"))
		overlap := renewSent.Add(ttl - ttl/10).Sub(elected) // from the core's earliest deadline
		t.Logf("server clock stepped forward %v, TTL %v: new leader elected %v after the old leader's last renewal, %v before its deadline (TTL − TTL/10)",
			step, ttl, elected.Sub(renewSent), overlap)
		if overlap <= 0 {
			t.Errorf("new leader elected %v after the old leader's deadline: the step did not shorten the TTL", -overlap)
		}
		if elected.Sub(renewSent) < ttl-step {
			t.Errorf("new leader elected %v after the last renewal, before TTL - step = %v", elected.Sub(renewSent), ttl-step)
		}
		if err := ls.Renew(ctx, []election.Claim{held}); !errors.Is(err, election.ErrSessionExpired) {
			t.Errorf("old leader's Renew after its key expired early = %v, want ErrSessionExpired", err)
		}
	})
	t.Run("quarantine", func(t *testing.T) {
		srv, clock := startSteppedServer(t)
		ctx := testContext(t, 60*time.Second)
		const ttl = 10 * time.Second
		step := time.Hour
		leader := newBackend(t, srv.client(t), Config{Quarantine: time.Second})
		follower := newBackend(t, srv.client(t), Config{})
		ls := openSession(t, ctx, leader, ttl)
		claim(t, ctx, ls, request("forward", "old"))
		renewSent := time.Now()
		if err := ls.Renew(ctx, nil); err != nil {
			t.Fatalf("Renew: %v", err)
		}
		srv.restart(t, ctx)
		clock.set(t, step)
		checkServerClock(t, ctx, srv.client(t), step)
		fs := openSession(t, ctx, follower, ttl)
		if _, err := fs.Claim(ctx, request("forward", "new")); err != nil {
			t.Fatalf("claim right after a restart and a step forward of %v = %v; want elected (the step ends the quarantine of %v)",
				step, err, ttl)
		}
		elected := time.Now()
		if elected.After(renewSent.Add(ttl - ttl/10)) {
			t.Fatalf("elected %v after the old leader's last renewal, after its deadline: no overlap shown", elected.Sub(renewSent))
		}
		t.Logf("server restarted and stepped forward %v: new leader elected %v after the old leader's last renewal, %v before its deadline",
			step, elected.Sub(renewSent), renewSent.Add(ttl-ttl/10).Sub(elected))
	})
}

// claimUntilElected claims req through a new session of b every 20ms, as a
// candidate arriving or retrying would, until it wins, and returns when
// the winning reply arrived. Any error but ErrTaken fails the test.
func claimUntilElected(t *testing.T, ctx context.Context, b *Backend, ttl time.Duration, req election.ClaimRequest) time.Time {
	t.Helper()
	s := openSession(t, ctx, b, ttl)
	for {
		_, err := s.Claim(ctx, req)
		if err == nil {
			return time.Now()
		}
		if !errors.Is(err, election.ErrTaken) {
			t.Fatalf("Claim(%q): %v", req.Name, err)
		}
		if _, ok := isQuarantine(err); ok {
			t.Fatalf("Claim(%q): %v; want no quarantine", req.Name, err)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("Claim(%q) never elected: %v", req.Name, ctx.Err())
		}
		if err := s.Renew(ctx, nil); err != nil {
			t.Fatalf("Renew: %v", err)
		}
	}
}
