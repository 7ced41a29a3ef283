package memory_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// The tests in this package that check timing run inside synctest
// bubbles: time moves only when every goroutine is blocked, so elapsed
// times are exact and a check such as "at TTL, not a nanosecond later"
// can fail.

const ttl = time.Second

func openSession(t *testing.T, c *memory.Client, ttl time.Duration) election.Session {
	t.Helper()
	s, err := c.OpenSession(t.Context(), ttl)
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	return s
}

func request(name, id string) election.ClaimRequest {
	return election.ClaimRequest{Name: name, ID: id, Token: fmt.Sprintf("token-%s-0123456789", id)}
}

func claim(t *testing.T, s election.Session, name, id string) election.Claim {
	t.Helper()
	c, err := s.Claim(t.Context(), request(name, id))
	if err != nil {
		t.Fatalf("Claim %s by %s: %v", name, id, err)
	}
	return c
}

// watch starts a watch that ends with the test.
func watch(t *testing.T, c *memory.Client, name string) <-chan election.WatchEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	events, err := c.Watch(ctx, name)
	if err != nil {
		cancel()
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		for range events {
		}
	})
	return events
}

// next receives the next event; the bubble's time moves on until it
// comes.
func next(t *testing.T, events <-chan election.WatchEvent) election.WatchEvent {
	t.Helper()
	ev, ok := <-events
	if !ok {
		t.Fatalf("watch closed")
	}
	return ev
}

// noEvent fails if an event is ready once every goroutine of the bubble is
// blocked.
func noEvent(t *testing.T, events <-chan election.WatchEvent, why string) {
	t.Helper()
	synctest.Wait()
	select {
	case ev := <-events:
		t.Fatalf("%s, yet the watch delivered %+v (leader %+v)", why, ev, ev.Leader)
	default:
	}
}

func holderID(ev election.WatchEvent) string {
	if ev.Leader == nil {
		return "<vacant>"
	}
	return ev.Leader.ID
}

func leaderID(t *testing.T, c *memory.Client, name string) string {
	t.Helper()
	l, err := c.Leader(t.Context(), name)
	switch {
	case errors.Is(err, election.ErrNoLeader):
		return "<vacant>"
	case err != nil:
		t.Fatalf("Leader: %v", err)
	}
	return l.ID
}

// wantHold checks one recorded term.
func wantHold(t *testing.T, h memory.Hold, id string, fence uint64, from, to time.Time, end memory.HoldEnd) {
	t.Helper()
	if h.HolderID != id || h.Fence != fence || !h.From.Equal(from) || !h.To.Equal(to) || h.End != end {
		t.Fatalf("hold %+v, want holder %s fence %d from %v to %v ended by %v", h, id, fence, from, to, end)
	}
}
