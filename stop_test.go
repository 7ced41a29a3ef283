package election_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// `defer c.Stop(signalCtx)` with a context that has already ended still
// hands over at once: with no handler running, Stop makes its one release
// attempt (bounded by OpTimeout) and returns nil; the store is vacant and
// the next candidate leads without waiting for the TTL.
func TestStopWithEndedContextStillReleases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.NewStore()
		elA := mustElector(t, store.NewClient(), election.Config{TTL: 10 * time.Second})
		elB := mustElector(t, store.NewClient(), election.Config{TTL: 10 * time.Second})
		a := mustCandidate(t, elA, election.CandidateConfig{Name: "job", ID: "a",
			Handlers: []election.Handler{func(ctx context.Context, _ election.Term) { <-ctx.Done() }}})
		b := mustCandidate(t, elB, election.CandidateConfig{Name: "job", ID: "b"})
		for _, c := range []*election.Candidate{a, b} {
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if !a.IsLeader() {
			t.Fatal("a does not lead")
		}
		ended, cancel := context.WithCancel(context.Background())
		cancel()
		began := time.Now()
		if err := a.Stop(ended); err != nil {
			t.Fatalf("Stop with an ended context and no handler left running = %v, want nil", err)
		}
		if took := time.Since(began); took > elA.Config().OpTimeout {
			t.Fatalf("Stop took %v, more than one release attempt (OpTimeout %v)", took, elA.Config().OpTimeout)
		}
		synctest.Wait()
		if !b.IsLeader() {
			t.Fatalf("b does not lead at once after a's Stop")
		}
		closeAll(t, elA, elB)
	})
}
