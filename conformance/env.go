package conformance

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/history"
)

// env is one subtest's world: the harness, its nodes and the recorded
// leadership intervals.
type env struct {
	t      *testing.T
	ctx    context.Context
	h      Harness
	timing Timing
	caps   Capabilities

	// hist records every term, as the handlers see it, and the events of
	// every node, for the history checks (internal/history).
	hist *history.Recorder
}

// node is one process: a backend client with its own link and an elector.
type node struct {
	id   string
	b    election.Backend
	link Link
	el   *election.Elector

	hist *history.Recorder

	mu        sync.Mutex
	lastRenew time.Time // send time of the last renewal that covered claims
	events    []election.Event
}

func (e *env) newNode(id string) *node {
	e.t.Helper()
	b, link, err := e.h.NewBackend(e.ctx)
	if err != nil {
		e.t.Fatalf("harness NewBackend: %v", err)
	}
	if _, notifies := b.(election.Notifier); notifies != e.caps.Notify {
		e.t.Fatalf("backend %T: implements election.Notifier = %v, but the harness's Capabilities().Notify = %v",
			b, notifies, e.caps.Notify)
	}
	n := &node{id: id, b: b, link: link, hist: e.hist}
	el, err := election.New(b, election.Config{TTL: e.timing.TTL, OnEvent: n.record})
	if err != nil {
		e.t.Fatalf("election.New with TTL %v: %v", e.timing.TTL, err)
	}
	n.el = el
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*e.timing.TTL+5*time.Second)
		defer cancel()
		_ = link.Heal(ctx)
		_ = el.Close(ctx)
		_ = e.h.CloseBackend(b)
	})
	return n
}

func (n *node) record(ev election.Event) {
	n.hist.OnEvent(n.id)(ev)
	n.mu.Lock()
	defer n.mu.Unlock()
	if ev.Kind == election.EventRenewed && ev.Count > 0 {
		n.lastRenew = ev.Time
	}
	n.events = append(n.events, ev)
}

func (n *node) lastRenewal() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastRenew
}

func (n *node) sawEvent(kind election.EventKind, match func(election.Event) bool) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ev := range n.events {
		if ev.Kind == kind && (match == nil || match(ev)) {
			return true
		}
	}
	return false
}

// openSession opens a session on n's raw Backend, closed when the test
// ends, and fails the test if the session disagrees with the harness's
// Capabilities.Queue.
func (e *env) openSession(n *node, ttl time.Duration) election.Session {
	e.t.Helper()
	s, err := n.b.OpenSession(e.ctx, ttl)
	if err != nil {
		e.t.Fatalf("OpenSession(%v) on %s: %v", ttl, n.id, err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*e.timing.TTL+5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	e.checkQueuer(s)
	return s
}

// checkQueuer fails the test if s disagrees with the harness's
// Capabilities.Queue (see queuerMismatch).
func (e *env) checkQueuer(s election.Session) {
	e.t.Helper()
	if err := e.queuerMismatch(s); err != nil {
		e.t.Fatal(err)
	}
}

// queuerMismatch returns an error if s implements election.Queuer and the
// harness does not declare Capabilities.Queue, or the other way round.
func (e *env) queuerMismatch(s election.Session) error {
	_, queues := s.(election.Queuer)
	switch {
	case queues && !e.caps.Queue:
		return fmt.Errorf("session %T implements election.Queuer but the harness's Capabilities().Queue is false: "+
			"declare it, or the suite never checks the line the core relies on", s)
	case !queues && e.caps.Queue:
		return fmt.Errorf("the harness's Capabilities().Queue is true but session %T does not implement election.Queuer", s)
	}
	return nil
}

// candidate makes a started candidate on n whose terms are recorded.
func (e *env) candidate(n *node, name, id string, meta map[string]string) *election.Candidate {
	e.t.Helper()
	c := e.newCandidate(n, name, id, meta)
	if err := c.Start(e.ctx); err != nil {
		e.t.Fatalf("Start %s: %v", id, err)
	}
	return c
}

func (e *env) newCandidate(n *node, name, id string, meta map[string]string) *election.Candidate {
	e.t.Helper()
	c, err := n.el.NewCandidate(election.CandidateConfig{
		Name: name, ID: id, Metadata: meta,
		Handlers: []election.Handler{e.hist.Handler(n.id)},
	})
	if err != nil {
		e.t.Fatalf("NewCandidate %s: %v", id, err)
	}
	return c
}

// recorder returns a handler that records its term's interval.
func (e *env) recorder() election.Handler { return e.hist.Handler("") }

// checkIntervals fails the test if two terms of one election overlap or a
// later term's fence is not greater than an earlier one's. It returns the
// number of terms seen.
func (e *env) checkIntervals() int {
	e.t.Helper()
	return e.hist.Report(e.t, history.Bounds{})
}

func (e *env) termCount(name string) int { return e.hist.Count(name) }

// waitFor polls cond every 5ms until it holds or d passes. Polling is fine
// in a test; the library itself never polls.
func (e *env) waitFor(d time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || e.ctx.Err() != nil {
			e.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leaderOf returns the one candidate that leads, or nil if none or several.
func leaderOf(cs []*election.Candidate) *election.Candidate {
	var l *election.Candidate
	for _, c := range cs {
		if c.IsLeader() {
			if l != nil {
				return nil
			}
			l = c
		}
	}
	return l
}

// settle is a generous bound for a pushed handoff or a new election.
func (e *env) settle() time.Duration {
	return 2*e.timing.TTL + e.timing.takeover() + 5*time.Second
}

func (e *env) stop(c *election.Candidate) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*e.timing.TTL+5*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		e.t.Errorf("Stop %s: %v", c.ID(), err)
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}
