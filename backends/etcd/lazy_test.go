package etcd_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
	"github.com/electionkit/election/internal/testserver"
)

// silentListener accepts connections on a loopback port and never answers
// (a hung server), counting the connections it accepted.
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

// OpenURL gives up after dial_timeout, whether the port refuses
// connections or accepts them and never answers, with ErrUnavailable
// naming the address.
func TestOpenURLHonoursDialTimeout(t *testing.T) {
	const dialTimeout = 200 * time.Millisecond
	const bound = dialTimeout + 1300*time.Millisecond // a loaded machine's slack
	silent := listenSilent(t)
	for _, tc := range []struct{ what, addr string }{
		{"refused", net.JoinHostPort("127.0.0.1", strconv.Itoa(testserver.FreePort(t)))},
		{"silent", silent.ln.Addr().String()},
	} {
		t.Run(tc.what, func(t *testing.T) {
			start := time.Now()
			_, err := etcd.OpenURL(testCtx(t), &url.URL{Scheme: "etcd", Host: tc.addr, RawQuery: "dial_timeout=" + dialTimeout.String()})
			took := time.Since(start)
			if !errors.Is(err, election.ErrUnavailable) || !strings.Contains(err.Error(), tc.addr) {
				t.Fatalf("OpenURL(%s) = %v, want ErrUnavailable naming %s", tc.what, err, tc.addr)
			}
			if took > bound || took < dialTimeout {
				t.Errorf("OpenURL(%s) failed after %v, want after dial_timeout %v and within %v", tc.what, took, dialTimeout, bound)
			}
			t.Logf("%s: failed after %v: %v", tc.what, took.Round(time.Millisecond), err)
		})
	}
}

// lazy=true: OpenURL makes no connection; a candidate on a stopped etcd
// campaigns (Start does not fail) and is elected once etcd starts.
func TestOpenURLLazy(t *testing.T) {
	ctx := testCtx(t)
	silent := listenSilent(t)
	b, err := etcd.OpenURL(ctx, &url.URL{Scheme: "etcd", Host: silent.ln.Addr().String(), RawQuery: "lazy=true&dial_timeout=1m"})
	if err != nil {
		t.Fatalf("OpenURL lazy: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := silent.accepted.Load(); n != 0 {
		t.Fatalf("OpenURL with lazy=true connected %d times, want none", n)
	}
	_, err = etcd.New(etcd.Config{Endpoints: []string{"127.0.0.1:1"}, Lazy: true, Username: "u", Password: "p"})
	if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "Lazy") {
		t.Errorf("Lazy with a username: %v, want ErrInvalidArgument naming Lazy", err)
	}

	srv := startEtcd(t, etcdOptions{})
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	backend, cfg, err := election.Open(ctx, "etcd://"+srv.addr+"/lazy?lazy=true&ttl=2s&dial_timeout=1s")
	if err != nil {
		t.Fatalf("election.Open lazy with etcd down: %v", err)
	}
	defer election.CloseBackend(backend)
	el, err := election.New(backend, cfg)
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
		t.Fatalf("Start with etcd down: %v", err)
	}
	for failed := false; !failed; {
		select {
		case ev := <-events:
			if ev.Kind == election.EventClaimed {
				t.Fatalf("claimed while etcd is down: %+v", ev)
			}
			failed = ev.Kind == election.EventClaimFailed && errors.Is(ev.Err, election.ErrUnavailable)
		case <-ctx.Done():
			t.Fatal("no EventClaimFailed with ErrUnavailable while etcd is down")
		}
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("start etcd: %v", err)
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
			t.Fatal("not elected after etcd started")
		}
	}
}
