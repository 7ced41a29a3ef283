// Package storedown holds what the backends' tests of a store that is down
// share: a listener that accepts connections and never answers (a hung
// server), and the check that a candidate started while its store is down
// campaigns and is elected once the store starts.
//
// This package is for tests only: it imports testing.
package storedown

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// Silent is a loopback listener that accepts connections and never
// answers, counting those it accepted.
type Silent struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
	done     chan struct{}
}

// Listen starts a Silent listener on a random loopback port; the test's
// cleanup closes it and every connection it accepted.
func Listen(t testing.TB) *Silent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Silent{ln: ln, done: make(chan struct{})}
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

// Addr is the listener's address, "127.0.0.1:port".
func (s *Silent) Addr() string { return s.ln.Addr().String() }

// Accepted is the number of connections accepted so far.
func (s *Silent) Accepted() int64 { return s.accepted.Load() }

// ElectedOnceUp starts a candidate on b, whose store must be down, and
// checks that Start succeeds, that a claim fails with ErrUnavailable and
// none succeeds; it then calls startStore and waits, until ctx ends, for
// the candidate to lead. It closes the elector before it returns.
func ElectedOnceUp(t testing.TB, ctx context.Context, b election.Backend, cfg election.Config, startStore func() error) {
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
	c, err := el.NewCandidate(election.CandidateConfig{Name: "store-down", ID: "candidate-1"})
	if err != nil {
		t.Fatal(err)
	}
	events := c.Events()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start with the store down: %v", err)
	}
	for failed := false; !failed; {
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
