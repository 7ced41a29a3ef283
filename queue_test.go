package election_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
	"github.com/electionkit/election/clocktest"
)

// writeCounter wraps a Backend and counts the claims, enqueues and releases
// made through its sessions.
type writeCounter struct {
	election.Backend
	writes atomic.Int64
}

func (w *writeCounter) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	s, err := w.Backend.OpenSession(ctx, ttl)
	if err != nil {
		return nil, err
	}
	return &countedSession{Session: s, q: s.(election.Queuer), writes: &w.writes}, nil
}

type countedSession struct {
	election.Session
	q      election.Queuer
	writes *atomic.Int64
}

func (s *countedSession) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	s.writes.Add(1)
	return s.Session.Claim(ctx, req)
}

func (s *countedSession) Enqueue(ctx context.Context, req election.ClaimRequest) (election.Claim, *election.Leader, error) {
	s.writes.Add(1)
	return s.q.Enqueue(ctx, req)
}

func (s *countedSession) Release(ctx context.Context, c election.Claim) error {
	s.writes.Add(1)
	return s.Session.Release(ctx, c)
}

// startPair starts candidates a and b of election "line", each on its own
// elector over its own backend, a first: a leads and b waits.
func startPair(t *testing.T, ba, bb election.Backend, cfgA, cfgB election.Config) (elA, elB *election.Elector, a, b *election.Candidate) {
	t.Helper()
	elA, elB = mustElector(t, ba, cfgA), mustElector(t, bb, cfgB)
	a = mustCandidate(t, elA, election.CandidateConfig{Name: "line", ID: "a"})
	b = mustCandidate(t, elB, election.CandidateConfig{Name: "line", ID: "b"})
	for _, c := range []*election.Candidate{a, b} {
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return elA, elB, a, b
}

// On a store that keeps a line (election.Queuer), a waiting candidate is in
// line, and the leader's release alone elects it: it takes over without a
// store write of its own.
func TestQueuedCandidateTakesOverWithoutAWrite(t *testing.T) {
	store := memory.NewStore()
	counter := &writeCounter{Backend: store.NewClient()}
	events := make(eventLog, 1024)
	elA, elB, a, b := startPair(t, store.NewClient(), counter,
		election.Config{TTL: 2 * time.Second}, election.Config{TTL: 2 * time.Second, OnEvent: events.hook})
	aTerm, _ := a.Term()
	taken := events.next(t, election.EventClaimTaken, func() {})
	if !taken.Queued || taken.Leader == nil || taken.Leader.ID != "a" {
		t.Fatalf("b's first attempt reported %+v, want queued behind a", taken)
	}
	before := counter.writes.Load()

	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, b.IsLeader)
	if ev := events.next(t, election.EventClaimed, func() {}); !ev.Queued || ev.Latency != 0 {
		t.Fatalf("b's EventClaimed = %+v, want Queued with no claim latency", ev)
	}
	if n := counter.writes.Load() - before; n != 0 {
		t.Fatalf("b made %d store writes to take over, want 0 (a's release elected it)", n)
	}
	bTerm, _ := b.Term()
	if bTerm.Fence <= aTerm.Fence {
		t.Fatalf("b's fence %d is not greater than a's %d", bTerm.Fence, aTerm.Fence)
	}
	closeAll(t, elA, elB)
}

// The safety rule holds for a term the candidate waited for in line: its
// leader context ends exactly at the last successful renewal's send time +
// TTL − DriftMargin, also when that renewal was sent before the candidate
// learned it leads.
func TestQueuedTermEndsAtLastRenewalSendPlusTTLMinusDrift(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	store := memory.NewStore(memory.WithClock(clk))
	const ttl, drift = 10 * time.Second, time.Second
	cfg := election.Config{TTL: ttl, RenewInterval: 3 * time.Second, DriftMargin: drift, Clock: clk}
	elA := mustElector(t, store.NewClient(), cfg)
	clientB := store.NewClient()
	events := make(eventLog, 1024)
	cfg.OnEvent = events.hook
	elB := mustElector(t, clientB, cfg)

	a := mustCandidate(t, elA, election.CandidateConfig{Name: "job", ID: "a"})
	leaderCtx := make(chan context.Context, 1)
	b := mustCandidate(t, elB, election.CandidateConfig{Name: "job", ID: "b", Handlers: []election.Handler{
		func(ctx context.Context, _ election.Term) { leaderCtx <- ctx; <-ctx.Done() },
	}})
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ev := events.next(t, election.EventClaimTaken, func() {}); !ev.Queued {
		t.Fatalf("b not queued: %+v", ev)
	}
	// b's session renews while b waits in line; the clock then moves one
	// second, less than the 2.7s before the next renewal at the earliest,
	// so this is b's last renewal before it learns it leads.
	renewal := events.next(t, election.EventRenewed, func() { clk.Advance(100 * time.Millisecond) })
	clk.Advance(time.Second)
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	ctx := <-leaderCtx
	if err := clientB.Close(); err != nil { // every renewal fails from now on
		t.Fatal(err)
	}
	deadline := renewal.Time.Add(ttl - drift)
	clk.Advance(deadline.Sub(clk.Now()) - time.Nanosecond)
	if ctx.Err() != nil || !b.IsLeader() {
		t.Fatalf("leadership ended before renewal send + TTL − drift")
	}
	clk.Advance(time.Nanosecond)
	if ctx.Err() == nil || b.IsLeader() {
		t.Fatalf("leader context not cancelled at renewal send + TTL − drift")
	}
	if ev := events.next(t, election.EventLost, func() {}); ev.Reason != election.LossDeadline {
		t.Fatalf("loss reason %q, want %q", ev.Reason, election.LossDeadline)
	}
	if err := elA.Close(stopCtx); err != nil {
		t.Fatal(err)
	}
	if err := elB.Close(stopCtx); err != nil && !errors.Is(err, election.ErrUnavailable) {
		t.Fatal(err)
	}
}

// A candidate that stops while in line leaves it: the election does not
// pass to a candidate that no longer runs.
func TestStoppedCandidateLeavesTheLine(t *testing.T) {
	store := memory.NewStore()
	cfg := election.Config{TTL: 2 * time.Second}
	elA, elB, a, b := startPair(t, store.NewClient(), store.NewClient(), cfg, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if l, err := store.NewClient().Leader(ctx, "line"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("after both stopped, Leader = %+v, %v; want vacant", l, err)
	}
	closeAll(t, elA, elB)
}

// A candidate whose session expires while it waits in line (its claim in
// line went with it) joins the line again with a new session as soon as
// it learns of the expiry, without waiting for the leader to change.
func TestQueuedCandidateRejoinsAfterSessionExpiry(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	store := memory.NewStore(memory.WithClock(clk))
	cfg := election.Config{TTL: 2 * time.Second, RenewInterval: 500 * time.Millisecond, Clock: clk}
	clientB := store.NewClient()
	var queued atomic.Int64
	cfgB := cfg
	cfgB.OnEvent = func(ev election.Event) {
		if ev.Kind == election.EventClaimTaken && ev.Queued {
			queued.Add(1)
		}
	}
	elA, elB, a, b := startPair(t, store.NewClient(), clientB, cfg, cfgB)
	// OnEvent runs in the elector's own goroutine, just after the fact.
	waitUntil(t, func() bool { return queued.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := clientB.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	// The store expires b's session; a keeps renewing.
	for range 30 {
		clk.Advance(100 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	if err := clientB.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		clk.Advance(100 * time.Millisecond)
		return queued.Load() == 2
	})
	if !a.IsLeader() || b.IsLeader() {
		t.Fatalf("leadership changed while b rejoined: a %v, b %v", a.IsLeader(), b.IsLeader())
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, b.IsLeader)
	closeAll(t, elA, elB)
}

// A candidate that resigned joins the line again as soon as another
// candidate leads, so the next handoff comes back to it with no claim.
func TestResignedCandidateRejoinsTheLine(t *testing.T) {
	store := memory.NewStore()
	counter := &writeCounter{Backend: store.NewClient()}
	events := make(eventLog, 1024)
	elA, elB, a, b := startPair(t, counter, store.NewClient(),
		election.Config{TTL: 2 * time.Second, OnEvent: events.hook}, election.Config{TTL: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, b.IsLeader)
	// Well within a's hold-off of one TTL: a rejoins because b leads.
	if ev := events.next(t, election.EventClaimTaken, func() {}); !ev.Queued || ev.Leader == nil || ev.Leader.ID != "b" {
		t.Fatalf("after resigning, a reported %+v, want queued behind b", ev)
	}
	before := counter.writes.Load()
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, a.IsLeader)
	if n := counter.writes.Load() - before; n != 0 {
		t.Fatalf("a made %d store writes to take over again, want 0", n)
	}
	closeAll(t, elA, elB)
}
