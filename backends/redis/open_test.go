package redis

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/testserver"
)

// silentListener accepts connections on a loopback port and never answers:
// a server that is up but hung, or a black hole behind a load balancer. It
// counts the connections it accepted.
type silentListener struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
	done     chan struct{}
}

func listenSilent(t *testing.T) *silentListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentListener{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-s.done
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			_ = c.Close()
		}
	})
	return s
}

func (s *silentListener) addr() string { return s.ln.Addr().String() }

// The eager OpenURL gives up after dial_timeout, not after go-redis's own
// retry schedule (at least 1.6s of backoff sleeps alone for a refused
// connection, 3s read timeouts for a server that does not answer), with
// ErrUnavailable naming the address.
func TestOpenURLHonoursDialTimeout(t *testing.T) {
	const dialTimeout = 200 * time.Millisecond
	// The margin is far above the time a loaded machine needs to notice a
	// context deadline, and still below what go-redis alone would take.
	const bound = dialTimeout + 1300*time.Millisecond
	silent := listenSilent(t)
	for _, tc := range []struct{ what, addr string }{
		{"refused", "127.0.0.1:" + strconv.Itoa(testserver.FreePort(t))},
		{"silent", silent.addr()},
	} {
		t.Run(tc.what, func(t *testing.T) {
			ctx := testContext(t, 30*time.Second)
			start := time.Now()
			_, err := OpenURL(ctx, mustParse(t, "redis://"+tc.addr+"/?dial_timeout="+dialTimeout.String()))
			took := time.Since(start)
			if !errors.Is(err, election.ErrUnavailable) || !strings.Contains(err.Error(), tc.addr) {
				t.Fatalf("OpenURL(%s) = %v, want ErrUnavailable naming %s", tc.what, err, tc.addr)
			}
			if !strings.Contains(err.Error(), "dial_timeout 200ms") {
				t.Errorf("OpenURL(%s) = %v, does not say that dial_timeout ran out", tc.what, err)
			}
			if took > bound {
				t.Errorf("OpenURL(%s) failed after %v, want within dial_timeout %v (+%v margin)", tc.what, took, dialTimeout, bound-dialTimeout)
			}
			if tc.what == "silent" && took < dialTimeout {
				t.Errorf("OpenURL(silent) gave up after %v, before dial_timeout %v", took, dialTimeout)
			}
			t.Logf("%s: failed after %v: %v", tc.what, took.Round(time.Millisecond), err)
		})
	}
	if silent.accepted.Load() == 0 {
		t.Errorf("the silent server accepted no connection: the eager check never dialled it")
	}
}

// lazy=true: OpenURL does no I/O; a candidate on a server that is down
// campaigns (Start does not fail) and is elected once the server starts.
func TestOpenURLLazy(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	silent := listenSilent(t)
	b, err := OpenURL(ctx, mustParse(t, "redis://"+silent.addr()+"/?lazy=true&dial_timeout=1m"))
	if err != nil {
		t.Fatalf("OpenURL lazy: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := silent.accepted.Load(); n != 0 {
		t.Fatalf("OpenURL with lazy=true connected %d times, want none", n)
	}
	if _, err := OpenURL(ctx, mustParse(t, "redis://127.0.0.1:1/?lazy=maybe")); !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "lazy") {
		t.Errorf("lazy=maybe: %v, want ErrInvalidArgument naming lazy", err)
	}

	srv := startServer(t)
	if err := srv.proc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	backend, cfg, err := election.Open(ctx, "redis://"+srv.addr+"/?lazy=true&no_quarantine=true&ttl=2s")
	if err != nil {
		t.Fatalf("election.Open lazy with the server down: %v", err)
	}
	defer election.CloseBackend(backend)
	waitElected(t, ctx, backend, cfg, func() error { return srv.proc.Start(ctx) })
}

// waitElected starts a candidate on b while its store is down, checks that
// Start succeeds and that the claims fail, calls startStore, and waits
// until the candidate leads.
func waitElected(t *testing.T, ctx context.Context, b election.Backend, cfg election.Config, startStore func() error) {
	t.Helper()
	el, err := election.New(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := el.Close(cctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	c, err := el.NewCandidate(election.CandidateConfig{Name: "lazy", ID: "lazy-1"})
	if err != nil {
		t.Fatal(err)
	}
	events := c.Events()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start with the store down: %v", err)
	}
	failed := false
	for !failed {
		select {
		case ev := <-events:
			if ev.Kind == election.EventClaimed {
				t.Fatalf("claimed while the store is down: %+v", ev)
			}
			failed = ev.Kind == election.EventClaimFailed && errors.Is(ev.Err, election.ErrUnavailable)
		case <-ctx.Done():
			t.Fatal("no EventClaimFailed with ErrUnavailable while the store is down")
		}
	}
	if err := startStore(); err != nil {
		t.Fatalf("start the store: %v", err)
	}
	for {
		select {
		case ev := <-events:
			if ev.Kind == election.EventClaimed {
				if !c.IsLeader() {
					t.Fatalf("EventClaimed but not leading: %+v", ev)
				}
				return
			}
		case <-ctx.Done():
			t.Fatal("not elected after the store started")
		}
	}
}
