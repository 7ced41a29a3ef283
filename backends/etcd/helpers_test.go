package etcd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// backend, session, watch and client the tests open is closed by then.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCtx returns a context bounded generously for one test step.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newBackend opens a Backend and closes it when the test ends.
func newBackend(t *testing.T, cfg etcd.Config) *etcd.Backend {
	t.Helper()
	b, err := etcd.New(cfg)
	if err != nil {
		t.Fatalf("etcd.New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// openSession opens a session and closes it when the test ends.
func openSession(t *testing.T, b election.Backend, ttl time.Duration) election.Session {
	t.Helper()
	s, err := b.OpenSession(testCtx(t), ttl)
	if err != nil {
		t.Fatalf("OpenSession(%v): %v", ttl, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// rawClient is a plain etcd client for inspecting what the backend stored.
func rawClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// claim claims name for id with a token derived from both, failing the test
// on error.
func claim(t *testing.T, s election.Session, name, id string) election.Claim {
	t.Helper()
	c, err := s.Claim(testCtx(t), election.ClaimRequest{Name: name, Token: "token-" + id + "-" + name, ID: id})
	if err != nil {
		t.Fatalf("Claim(%q) for %s: %v", name, id, err)
	}
	return c
}

// nextEvent returns the next watch event, failing the test if none comes
// within a generous bound.
func nextEvent(t *testing.T, events <-chan election.WatchEvent) election.WatchEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatalf("watch channel closed, want an event")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatalf("no watch event within 30s")
	}
	return election.WatchEvent{}
}

// holder describes an event for messages: "vacant" or "id@fence".
func holder(ev election.WatchEvent) string {
	switch {
	case ev.Err != nil:
		return "error: " + ev.Err.Error()
	case ev.Leader == nil:
		return "vacant"
	default:
		return fmt.Sprintf("%s@%d", ev.Leader.ID, ev.Leader.Fence)
	}
}
