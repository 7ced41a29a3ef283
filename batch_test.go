package election_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// batchingBackend gives the memory backend's sessions a ClaimBatcher that
// makes each claim of a batch with Claim, and records the batches.
type batchingBackend struct {
	*memory.Client
	max int

	mu      sync.Mutex
	batches [][]string
}

func (b *batchingBackend) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	s, err := b.Client.OpenSession(ctx, ttl)
	if err != nil {
		return nil, err
	}
	return &batchingSession{Session: s, b: b}, nil
}

type batchingSession struct {
	election.Session
	b *batchingBackend
}

func (s *batchingSession) MaxClaimBatch() int { return s.b.max }

func (s *batchingSession) ClaimBatch(ctx context.Context, reqs []election.ClaimRequest) ([]election.Claim, []error) {
	names := make([]string, len(reqs))
	claims := make([]election.Claim, len(reqs))
	errs := make([]error, len(reqs))
	for i, r := range reqs {
		names[i] = r.Name
		claims[i], errs[i] = s.Session.Claim(ctx, r)
	}
	s.b.mu.Lock()
	s.b.batches = append(s.b.batches, names)
	s.b.mu.Unlock()
	return claims, errs
}

// Claims made at the same time through a ClaimBatcher session go in
// batches of at most MaxClaimBatch distinct names, and each candidate gets
// its own answer: every one of n candidates leads its election, a taken
// election is reported as taken, and the store saw far fewer batches than
// claims.
func TestClaimsAreBatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, max = 200, 16
		store := memory.NewStore()
		client := store.NewClient()
		if err := client.SetLatency(time.Millisecond, time.Millisecond); err != nil {
			t.Fatal(err)
		}
		b := &batchingBackend{Client: client, max: max}
		el := mustElector(t, b, election.Config{TTL: 10 * time.Second})
		other := mustElector(t, store.NewClient(), election.Config{TTL: 10 * time.Second})
		taken := mustCandidate(t, other, election.CandidateConfig{Name: "job-0", ID: "other"})
		if err := taken.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		cands := make([]*election.Candidate, n)
		var wg sync.WaitGroup
		for i := range n {
			cands[i] = mustCandidate(t, el, election.CandidateConfig{Name: fmt.Sprintf("job-%d", i), ID: "me"})
			wg.Go(func() {
				if err := cands[i].Start(context.Background()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		synctest.Wait()
		for i, c := range cands {
			if lead := c.IsLeader(); lead != (i != 0) {
				t.Fatalf("%s: leads %v, want %v", c.Election(), lead, i != 0)
			}
		}
		if l, ok := cands[0].Leader(); !ok || l.ID != "other" {
			t.Fatalf("job-0's leader is %+v, want other", l)
		}
		b.mu.Lock()
		batches := b.batches
		b.mu.Unlock()
		claimed := 0
		for _, names := range batches {
			if len(names) > max {
				t.Fatalf("a batch of %d claims, more than MaxClaimBatch %d", len(names), max)
			}
			seen := map[string]bool{}
			for _, name := range names {
				if seen[name] {
					t.Fatalf("batch %v claims %s twice", names, name)
				}
				seen[name] = true
			}
			claimed += len(names)
		}
		if claimed != n {
			t.Fatalf("%d claims in the batches, want %d", claimed, n)
		}
		if want := n/max + 4; len(batches) > want {
			t.Fatalf("%d batches for %d claims at once, want at most %d", len(batches), n, want)
		}
		t.Logf("%d claims in %d batches", n, len(batches))
		closeAll(t, el, other)
	})
}
