package election_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
	"github.com/electionkit/election/clocktest"
)

// eventLog collects OnEvent calls without blocking the elector.
type eventLog chan election.Event

func (l eventLog) hook(ev election.Event) {
	select {
	case l <- ev:
	default:
	}
}

// next returns the next event of kind, waiting in real time (this is
// synchronisation with the elector's goroutines, not a timing check).
func (l eventLog) next(t *testing.T, kind election.EventKind, advance func()) election.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case ev := <-l:
			if ev.Kind == kind {
				return ev
			}
		default:
			advance()
			time.Sleep(time.Millisecond)
		}
	}
	t.Fatalf("no %v event", kind)
	return election.Event{}
}

// The safety rule, exactly: the leader context is cancelled at the send time
// of the last successful renewal + TTL − DriftMargin, not a tick later and
// not a tick earlier, even when the store is unreachable from then on.
func TestLeaderContextEndsAtLastRenewalSendPlusTTLMinusDrift(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	client := memory.New(memory.WithClock(clk))
	events := make(eventLog, 1024)
	const ttl, drift = 10 * time.Second, time.Second
	el, err := election.New(client, election.Config{
		TTL: ttl, RenewInterval: 3 * time.Second, DriftMargin: drift,
		Clock: clk, OnEvent: events.hook,
	})
	if err != nil {
		t.Fatal(err)
	}
	leaderCtx := make(chan context.Context, 1)
	c, err := el.NewCandidate(election.CandidateConfig{Name: "job", ID: "a", Handlers: []election.Handler{
		func(ctx context.Context, _ election.Term) { leaderCtx <- ctx; <-ctx.Done() },
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !c.IsLeader() {
		t.Fatal("not elected on the first attempt against an empty store")
	}
	ctx := <-leaderCtx

	renewal := events.next(t, election.EventRenewed, func() { clk.Advance(100 * time.Millisecond) })
	sent := renewal.Time
	// From now on every renewal fails at once.
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := sent.Add(ttl - drift)
	clk.Advance(deadline.Sub(clk.Now()) - time.Nanosecond)
	if ctx.Err() != nil || !c.IsLeader() {
		t.Fatalf("leadership ended %v before renewal send + TTL − drift", time.Nanosecond)
	}
	clk.Advance(time.Nanosecond)
	if ctx.Err() == nil {
		t.Fatalf("leader context not cancelled at renewal send + TTL − drift")
	}
	if !errors.Is(context.Cause(ctx), election.ErrLost) {
		t.Fatalf("cause = %v, want ErrLost", context.Cause(ctx))
	}
	if c.IsLeader() {
		t.Fatalf("IsLeader after the deadline")
	}
	lost := events.next(t, election.EventLost, func() {})
	if lost.Reason != election.LossDeadline {
		t.Fatalf("loss reason %q, want %q", lost.Reason, election.LossDeadline)
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := el.Close(stopCtx); err != nil && !errors.Is(err, election.ErrUnavailable) {
		t.Fatal(err)
	}
}

// Stop must not release while a handler ignores its context: the next
// leader would overlap with it. The release happens once it returns.
func TestStopDefersReleaseUntilHandlersReturn(t *testing.T) {
	store := memory.NewStore()
	eventsA := make(eventLog, 1024)
	elA := mustElector(t, store.NewClient(), election.Config{TTL: 2 * time.Second, OnEvent: eventsA.hook})
	elB := mustElector(t, store.NewClient(), election.Config{TTL: 2 * time.Second})
	unblock := make(chan struct{})
	returned := make(chan time.Time, 1)
	a := mustCandidate(t, elA, election.CandidateConfig{Name: "stuck", ID: "a", Handlers: []election.Handler{
		func(ctx context.Context, _ election.Term) {
			<-ctx.Done()
			<-unblock // ignores cancellation for a while
			returned <- time.Now()
		},
	}})
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	bStarted := make(chan time.Time, 1)
	b := mustCandidate(t, elB, election.CandidateConfig{Name: "stuck", ID: "b", Handlers: []election.Handler{
		func(ctx context.Context, _ election.Term) { bStarted <- time.Now(); <-ctx.Done() },
	}})
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop with a stuck handler = %v, want context.DeadlineExceeded", err)
	}
	select {
	case <-bStarted:
		t.Fatal("b elected while a's handler was still running")
	case <-time.After(300 * time.Millisecond):
	}
	close(unblock)
	aDone := <-returned
	select {
	case bAt := <-bStarted:
		if bAt.Before(aDone) {
			t.Fatalf("b started before a's handler returned")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b not elected after a's handler returned and the release went through")
	}
	if ev := eventsA.next(t, election.EventReleased, func() {}); ev.Err != nil || ev.Candidate != "a" {
		t.Fatalf("deferred release reported %+v, want a successful EventReleased for a", ev)
	}
	closeAll(t, elA, elB)
}

func TestRunIfLeader(t *testing.T) {
	store := memory.NewStore()
	el := mustElector(t, store.NewClient(), election.Config{TTL: time.Second})
	blocker := mustCandidate(t, mustElector(t, store.NewClient(), election.Config{TTL: time.Second}),
		election.CandidateConfig{Name: "gate", ID: "other"})
	if err := blocker.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := mustCandidate(t, el, election.CandidateConfig{Name: "gate", ID: "me"})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ran := false
	err := c.RunIfLeader(context.Background(), func(context.Context, election.Term) error { ran = true; return nil })
	if !errors.Is(err, election.ErrNotLeader) || ran {
		t.Fatalf("RunIfLeader as follower = %v (ran %v), want ErrNotLeader without running", err, ran)
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := blocker.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, c.IsLeader)
	sentinel := errors.New("work failed")
	var fence uint64
	err = c.RunIfLeader(context.Background(), func(ctx context.Context, term election.Term) error {
		fence = term.Fence
		if ctx.Err() != nil {
			t.Error("ctx already done while leading")
		}
		return sentinel
	})
	if !errors.Is(err, sentinel) || fence == 0 {
		t.Fatalf("RunIfLeader as leader = %v, fence %d; want fn's error and a fence", err, fence)
	}
	// Step-down waits for work running under RunIfLeader.
	inside := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		_ = c.RunIfLeader(context.Background(), func(ctx context.Context, _ election.Term) error {
			close(inside)
			<-ctx.Done()
			time.Sleep(20 * time.Millisecond)
			close(finished)
			return nil
		})
	}()
	<-inside
	if err := c.Resign(stopCtx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-finished:
	default:
		t.Fatal("Resign returned before RunIfLeader's work finished")
	}
	closeAll(t, el)
}

func TestStartStopConcurrently(t *testing.T) {
	el := mustElector(t, memory.New(), election.Config{TTL: time.Second})
	for i := 0; i < 20; i++ {
		c := mustCandidate(t, el, election.CandidateConfig{Name: "race"})
		done := make(chan error, 4)
		for j := 0; j < 2; j++ {
			go func() { done <- c.Start(context.Background()) }()
			go func() { done <- c.Stop(context.Background()) }()
		}
		for j := 0; j < 4; j++ {
			if err := <-done; err != nil && !errors.Is(err, election.ErrStopped) {
				t.Fatalf("concurrent Start/Stop: %v", err)
			}
		}
		if err := c.Start(context.Background()); !errors.Is(err, election.ErrStopped) {
			t.Fatalf("Start after Stop = %v, want ErrStopped", err)
		}
		if c.IsLeader() {
			t.Fatal("leader after Stop")
		}
	}
	closeAll(t, el)
}

func mustElector(t *testing.T, b election.Backend, cfg election.Config) *election.Elector {
	t.Helper()
	el, err := election.New(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func mustCandidate(t *testing.T, el *election.Elector, cfg election.CandidateConfig) *election.Candidate {
	t.Helper()
	c, err := el.NewCandidate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func closeAll(t *testing.T, els ...*election.Elector) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, el := range els {
		if err := el.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
