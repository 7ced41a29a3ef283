package election_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
	"github.com/electionkit/election/clocktest"
)

// countingBackend counts the store round trips sessions make.
type countingBackend struct {
	*memory.Client
	renews, claims atomic.Int64
}

func (b *countingBackend) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	s, err := b.Client.OpenSession(ctx, ttl)
	if err != nil {
		return nil, err
	}
	return &countingSession{Session: s, b: b}, nil
}

type countingSession struct {
	election.Session
	b *countingBackend
}

func (s *countingSession) Renew(ctx context.Context, claims []election.Claim) error {
	s.b.renews.Add(1)
	return s.Session.Renew(ctx, claims)
}

func (s *countingSession) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	s.b.claims.Add(1)
	return s.Session.Claim(ctx, req)
}

// One process holding 1,000 elections renews them all with one round trip
// per renew interval, and keeps every one of them.
func TestRenewalCostDoesNotGrowWithElections(t *testing.T) {
	const elections = 1000
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := &countingBackend{Client: memory.New(memory.WithClock(clk))}
	renewed := make(chan int, 100)
	el := mustElector(t, b, election.Config{
		TTL: 9 * time.Second, RenewInterval: 3 * time.Second, Clock: clk,
		OnEvent: func(ev election.Event) {
			if ev.Kind == election.EventRenewed {
				renewed <- ev.Count
			}
		},
	})
	cands := make([]*election.Candidate, elections)
	for i := range cands {
		cands[i] = mustCandidate(t, el, election.CandidateConfig{Name: fmt.Sprintf("job-%04d", i)})
		if err := cands[i].Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	const intervals = 10
	for i := 0; i < intervals; i++ {
		deadline := time.Now().Add(10 * time.Second)
	wait:
		for {
			select {
			case n := <-renewed:
				if n != elections {
					t.Fatalf("renewal %d covered %d claims, want %d", i, n, elections)
				}
				break wait
			default:
				if time.Now().After(deadline) {
					t.Fatalf("renewal %d did not happen", i)
				}
				clk.Advance(100 * time.Millisecond)
				time.Sleep(time.Millisecond)
			}
		}
	}
	if got := b.renews.Load(); got < intervals || got > intervals+1 {
		t.Fatalf("%d renew round trips for %d elections over %d intervals, want %d", got, elections, intervals, intervals)
	}
	for _, c := range cands {
		if !c.IsLeader() {
			t.Fatalf("%s lost leadership after %d renewals", c.Election(), intervals)
		}
	}
	if got := b.claims.Load(); got != elections {
		t.Fatalf("%d claims for %d elections: candidates re-claimed", got, elections)
	}
	closeAll(t, el)
}
