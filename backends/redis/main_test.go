package redis

import (
	"context"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/testserver"
	"github.com/electionkit/election/internal/teststore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// server is a redis-server child process on a loopback port, without
// persistence, so a Stop and Start loses every key.
type server struct {
	proc *testserver.Process
	addr string
}

// startServer starts a redis-server with the given extra arguments (config
// directives, e.g. "--requirepass", "secret"). The test's cleanup kills it.
func startServer(t testing.TB, extra ...string) *server {
	t.Helper()
	r := teststore.StartRedis(t, teststore.RedisOptions{Args: extra})
	return &server{proc: r.Process, addr: r.Addr}
}

// client returns a go-redis client of s, closed by the test's cleanup.
func (s *server) client(t testing.TB) *goredis.Client {
	t.Helper()
	return s.clientAt(t, s.addr)
}

func (s *server) clientAt(t testing.TB, addr string) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// restart kills the server and starts it again on the same port: without
// persistence it comes back empty.
func (s *server) restart(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := s.proc.Stop(ctx); err != nil {
		t.Fatalf("stop redis-server: %v", err)
	}
	if err := s.proc.Start(ctx); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
}

// newBackend returns a Backend on client, closed by the test's cleanup.
func newBackend(t *testing.T, client goredis.UniversalClient, cfg Config) *Backend {
	t.Helper()
	b, err := New(client, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func openSession(t *testing.T, ctx context.Context, b *Backend, ttl time.Duration) election.Session {
	t.Helper()
	s, err := b.OpenSession(ctx, ttl)
	if err != nil {
		t.Fatalf("OpenSession(%v): %v", ttl, err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// isQuarantine reports whether err is a claim refused by the restart
// quarantine, and how long it has left.
func isQuarantine(err error) (time.Duration, bool) {
	var taken *election.TakenError
	if errors.As(err, &taken) && taken.Holder.ID == "" && taken.Holder.Fence == 0 {
		return taken.ExpiresIn, true
	}
	return 0, false
}

// connTestTTL is the session TTL of the tests of how the backend connects
// (URLs, TLS, ACLs): they do not test expiry, and a server just started
// quarantines claims for 1-2s, which claim waits out renewing every TTL/3.
// A TTL of 1s left a loaded machine too little slack between renewals
// (a full run on a loaded machine: the session key expired while
// TestACLUser waited).
const connTestTTL = 10 * time.Second

// claim claims req, waiting out the quarantine of a fresh election, and
// fails the test on any other error.
func claim(t *testing.T, ctx context.Context, s election.Session, req election.ClaimRequest) election.Claim {
	t.Helper()
	for {
		c, err := s.Claim(ctx, req)
		if err == nil {
			return c
		}
		left, ok := isQuarantine(err)
		if !ok {
			t.Fatalf("Claim(%q): %v", req.Name, err)
		}
		// Keep the session alive meanwhile, as the core's renewals do.
		for wait := time.After(left + time.Millisecond); ; {
			if err := s.Renew(ctx, nil); err != nil {
				t.Fatalf("Renew while waiting out the quarantine: %v", err)
			}
			select {
			case <-wait:
			case <-time.After(s.TTL() / 3):
				continue
			case <-ctx.Done():
				t.Fatalf("Claim(%q): %v while waiting out the quarantine", req.Name, ctx.Err())
			}
			break
		}
	}
}

// claimWatched watches election name on b, claims it for id through s and
// checks that the watch reports the claim's fence: the whole path of a
// client, for tests of how the backend connects. It returns the claim and
// the watch.
func claimWatched(t *testing.T, ctx context.Context, b *Backend, s election.Session, name, id string) (election.Claim, <-chan election.WatchEvent) {
	t.Helper()
	ch, err := b.Watch(ctx, name)
	if err != nil {
		t.Fatalf("Watch(%q): %v", name, err)
	}
	next(t, ch) // the state before the claim
	held := claim(t, ctx, s, request(name, id))
	if ev := next(t, ch); ev.Leader == nil || ev.Leader.Fence != held.Fence {
		t.Fatalf("watch event after claiming %q = %+v, want fence %d", name, ev, held.Fence)
	}
	return held, ch
}

func request(name, id string) election.ClaimRequest {
	return election.ClaimRequest{Name: name, ID: id, Token: "token-of-" + id + "-" + name}
}
