package fxmodule

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

func TestGroupJobs(t *testing.T) {
	run := func(context.Context, election.Term) {}
	byName, names, err := groupJobs([]Job{
		{Election: "b", Run: run}, {Election: "a", Run: run}, {Election: "b", Run: run},
		{Election: "", Run: run}, {Election: "c"},
	})
	if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "empty election name") || !strings.Contains(err.Error(), `"c" has a nil Run`) {
		t.Errorf("err = %v, want both bad jobs reported", err)
	}
	if len(names) != 2 || names[0] != "a" || names[1] != "b" {
		t.Errorf("names = %q, want [a b]", names)
	}
	if len(byName["b"]) != 2 || len(byName["a"]) != 1 {
		t.Errorf("handlers per election: a %d, b %d; want 1, 2", len(byName["a"]), len(byName["b"]))
	}
	if _, _, err := groupJobs(nil); err != nil {
		t.Errorf("no jobs: %v", err)
	}
}

// newResources builds what New builds, on a client the test controls.
func newResources(t *testing.T, client *memory.Client, jobs ...Job) *resources {
	t.Helper()
	el, err := election.New(client, election.Config{TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l, err := newLeadership(el, "me", nil, jobs)
	if err != nil {
		t.Fatal(err)
	}
	return &resources{backend: client, elector: el, leadership: l}
}

// A job that ignores its context keeps the claim: stop reports the error
// (ErrHandlersRunning) and the elector keeps its session, so no one else is
// elected while the job runs; once it returns, the core releases, the
// elector finishes closing and the backend is closed: no goroutine left.
func TestStopWithStuckJobKeepsClaim(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	store := memory.NewStore()
	unblock := make(chan struct{})
	started := make(chan struct{})
	r := newResources(t, store.NewClient(), Job{Election: "reaper", Run: func(ctx context.Context, _ election.Term) {
		close(started)
		<-unblock // ignores ctx
	}})
	if err := r.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := r.stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, election.ErrHandlersRunning) ||
		!strings.Contains(err.Error(), "kept until the jobs return") {
		t.Fatalf("stop = %v, want the deadline, ErrHandlersRunning and an explanation", err)
	}
	observer := store.NewClient()
	defer observer.Close()
	if l, err := observer.Leader(context.Background(), "reaper"); err != nil || l.ID != "me" {
		t.Fatalf("while the job runs the store shows %+v, %v; want the claim kept", l, err)
	}

	close(unblock)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := observer.Leader(context.Background(), "reaper")
		if errors.Is(err, election.ErrNoLeader) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("election not released after the job returned: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-r.elector.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the elector did not finish closing after the job returned")
	}
	// The backend is closed just after Done, in the background; the
	// deferred VerifyNone waits for its goroutines to end.
}

// fx does not call OnStop after a failed OnStart: a start whose context
// ends before the first claim attempt closes everything itself.
func TestFailedStartCleansUp(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	client := memory.New()
	if err := client.Cut(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := newResources(t, client, Job{Election: "reaper", Run: func(context.Context, election.Term) {}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := r.start(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `start campaign in "reaper"`) {
		t.Fatalf("start = %v, want the deadline naming the election", err)
	}
	if _, err := r.elector.NewCandidate(election.CandidateConfig{Name: "x"}); !errors.Is(err, election.ErrStopped) {
		t.Errorf("elector still open after a failed start: NewCandidate = %v", err)
	}
}
