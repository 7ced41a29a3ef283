package election_test

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

// Close on a session whose end ends its claims (election.SessionEnder:
// etcd, Consul, memory's etcd mode) ends the session once every handler
// has returned, instead of releasing each claim: every election is handed
// over by the session's end, the waiters of another elector lead at once,
// and no claim is released one by one.
func TestCloseEndsClaimsWithTheSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 50
		store := memory.NewStore()
		elA := mustElector(t, store.NewClient(), election.Config{TTL: 10 * time.Second})
		elB := mustElector(t, store.NewClient(), election.Config{TTL: 10 * time.Second})
		var waiters []*election.Candidate
		for i := range n {
			name := fmt.Sprintf("job-%d", i)
			a := mustCandidate(t, elA, election.CandidateConfig{Name: name, ID: "a",
				Handlers: []election.Handler{func(ctx context.Context, _ election.Term) { <-ctx.Done() }}})
			if err := a.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			b := mustCandidate(t, elB, election.CandidateConfig{Name: name, ID: "b"})
			if err := b.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			waiters = append(waiters, b)
		}
		began := time.Now()
		if err := elA.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if took := time.Since(began); took >= elA.Config().OpTimeout {
			t.Fatalf("Close took %v, want less than OpTimeout (%v): no handler lingered", took, elA.Config().OpTimeout)
		}
		synctest.Wait()
		for _, b := range waiters {
			if !b.IsLeader() {
				t.Fatalf("%s: b does not lead at once after a's elector closed", b.Election())
			}
		}
		ends := map[memory.HoldEnd]int{}
		for _, h := range store.Holds() {
			if h.HolderID == "a" {
				ends[h.End]++
			}
		}
		if ends[memory.EndSessionClose] != n {
			t.Fatalf("a's holds ended %v, want all %d by the session's close", ends, n)
		}
		closeAll(t, elB)
	})
}

// A handler that outlives Close's first OpTimeout does not hold the other
// elections: their claims, left to the session's end, are then released
// one by one, while the lingering handler's claim stays held (and renewed)
// until it returns, and is released then.
func TestCloseReleasesOthersWhileAHandlerLingers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.NewStore()
		el := mustElector(t, store.NewClient(), election.Config{TTL: 10 * time.Second})
		opTimeout := el.Config().OpTimeout
		linger := 3 * opTimeout
		returned := make(chan time.Time, 1)
		slow := mustCandidate(t, el, election.CandidateConfig{Name: "slow", ID: "a",
			Handlers: []election.Handler{func(ctx context.Context, _ election.Term) {
				<-ctx.Done()
				time.Sleep(linger) // finishes its batch after Close
				returned <- time.Now()
			}}})
		fast := mustCandidate(t, el, election.CandidateConfig{Name: "fast", ID: "a",
			Handlers: []election.Handler{func(ctx context.Context, _ election.Term) { <-ctx.Done() }}})
		for _, c := range []*election.Candidate{slow, fast} {
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if err := el.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		handlerEnd := <-returned
		var slowHold, fastHold memory.Hold
		for _, h := range store.Holds() {
			switch h.Election {
			case "slow":
				slowHold = h
			case "fast":
				fastHold = h
			}
		}
		if fastHold.End != memory.EndRelease || !fastHold.To.Before(handlerEnd) {
			t.Fatalf("fast's hold %+v, want released before the slow handler returned at %v", fastHold, handlerEnd)
		}
		if slowHold.End != memory.EndRelease || slowHold.To.Before(handlerEnd) {
			t.Fatalf("slow's hold %+v, want released once its handler returned at %v", slowHold, handlerEnd)
		}
	})
}

// With a Close context that ends while a handler lingers, Close returns
// ErrHandlersRunning; the elections whose handlers returned are released
// at once, and the lingering one's claim is held until its handler
// returns, and released then.
func TestCloseContextEndsWhileAHandlerLingers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.NewStore()
		el := mustElector(t, store.NewClient(), election.Config{TTL: 10 * time.Second})
		release := make(chan struct{})
		slow := mustCandidate(t, el, election.CandidateConfig{Name: "slow", ID: "a",
			Handlers: []election.Handler{func(ctx context.Context, _ election.Term) { <-ctx.Done(); <-release }}})
		fast := mustCandidate(t, el, election.CandidateConfig{Name: "fast", ID: "a",
			Handlers: []election.Handler{func(ctx context.Context, _ election.Term) { <-ctx.Done() }}})
		for _, c := range []*election.Candidate{slow, fast} {
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), el.Config().OpTimeout/2)
		defer cancel()
		if err := el.Close(ctx); !errors.Is(err, election.ErrHandlersRunning) {
			t.Fatalf("Close = %v, want ErrHandlersRunning", err)
		}
		synctest.Wait()
		for _, h := range store.Holds() {
			switch {
			case h.Election == "fast" && h.End != memory.EndRelease:
				t.Fatalf("fast's hold %+v, want released when Close gave up waiting", h)
			case h.Election == "slow" && h.End != memory.StillHeld:
				t.Fatalf("slow's hold %+v, want still held while its handler runs", h)
			}
		}
		close(release)
		<-el.Done()
		for _, h := range store.Holds() {
			if h.Election == "slow" && h.End != memory.EndRelease {
				t.Fatalf("slow's hold %+v, want released once its handler returned", h)
			}
		}
	})
}
