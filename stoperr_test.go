package election_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// Stop reports the failure of the release it made, not one of an earlier
// term: a candidate whose release failed while it was cut off, and that
// campaigns again once the store answers, stops with no error. (The
// robustness suite found it on Redis.)
func TestStopDoesNotReportAnEarlierTermsRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Redis mode: no line of waiting claims, so a campaigning a
		// holds nothing and its Stop releases nothing.
		store := memory.NewStore(memory.WithExpiry(memory.RedisExpiry))
		clientA := store.NewClient()
		elA := mustElector(t, clientA, election.Config{TTL: 2 * time.Second})
		elB := mustElector(t, store.NewClient(), election.Config{TTL: 2 * time.Second})
		a := mustCandidate(t, elA, election.CandidateConfig{Name: "job", ID: "a",
			Handlers: []election.Handler{func(ctx context.Context, _ election.Term) { <-ctx.Done() }}})
		if err := a.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		b := mustCandidate(t, elB, election.CandidateConfig{Name: "job", ID: "b"})
		if err := b.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := clientA.Cut(context.Background()); err != nil {
			t.Fatal(err)
		}
		for !b.IsLeader() || a.IsLeader() {
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // a's release, cut off, has failed by now
		if err := clientA.Heal(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second) // a campaigns again; b leads
		if a.IsLeader() {
			t.Fatal("a leads again: the test does not test the case")
		}
		if err := a.Stop(context.Background()); err != nil {
			t.Fatalf("Stop of a candidate that holds nothing, with the store answering: %v", err)
		}
		closeAll(t, elA, elB)
	})
}
