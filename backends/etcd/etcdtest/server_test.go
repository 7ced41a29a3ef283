package etcdtest_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
	"github.com/electionkit/election/backends/etcd/etcdtest"
)

// TestMain fails the package if a server or client leaves a goroutine
// behind after Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestNew: a server from New serves the etcd backend on a loopback
// endpoint, with 1s leases granted as asked.
func TestNew(t *testing.T) {
	srv := etcdtest.New(t)
	if len(srv.Endpoints()) != 1 {
		t.Fatalf("Endpoints = %v", srv.Endpoints())
	}
	b, err := etcd.New(etcd.Config{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := b.OpenSession(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if s.TTL() != time.Second {
		t.Errorf("granted TTL %v, want 1s (the server's fast raft timing)", s.TTL())
	}
	if _, err := s.Claim(ctx, election.ClaimRequest{Name: "x", Token: "t", ID: "a"}); err != nil {
		t.Fatal(err)
	}
}

// TestRestartOnDir: a server started again on the same Dir sees the first
// one's data, so revisions (and fences) keep increasing; Close removes only
// directories Start created.
func TestRestartOnDir(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fence := func() uint64 {
		t.Helper()
		srv, err := etcdtest.Start(ctx, etcdtest.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}
		}()
		b, err := etcd.New(etcd.Config{Endpoints: srv.Endpoints()})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		s, err := b.OpenSession(ctx, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(ctx)
		c, err := s.Claim(ctx, election.ClaimRequest{Name: "restarted", Token: "t", ID: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, c); err != nil {
			t.Fatal(err)
		}
		return c.Fence
	}
	first := fence()
	second := fence()
	if second <= first {
		t.Fatalf("fence after restart %d, not above %d", second, first)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("Close removed the caller's Dir: %v", err)
	}

	srv, err := etcdtest.Start(ctx, etcdtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tmp := srv.Dir()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary Dir %s left after Close: %v", tmp, err)
	}
}

// TestStartCancelled: Start with an ended context fails and leaves no
// server or directory.
func TestStartCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv, err := etcdtest.Start(ctx, etcdtest.Options{})
	if err == nil {
		srv.Close()
		t.Fatalf("Start with a cancelled context succeeded")
	}
}
