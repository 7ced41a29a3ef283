package election_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// regressingBackend answers claims with fence 1 while regress is set, as a
// store restored from an old snapshot would, and releases by token.
type regressingBackend struct {
	*memory.Client
	regress atomic.Bool
}

func (b *regressingBackend) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	s, err := b.Client.OpenSession(ctx, ttl)
	if err != nil {
		return nil, err
	}
	return &regressingSession{Session: s, b: b}, nil
}

type regressingSession struct {
	election.Session
	b *regressingBackend
}

func (s *regressingSession) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	c, err := s.Session.Claim(ctx, req)
	if err == nil && s.b.regress.Load() {
		c.Fence = 1
	}
	return c, err
}

func (s *regressingSession) Release(ctx context.Context, c election.Claim) error {
	c.Fence = 0 // by token: the store knows the claim by its real fence
	return s.Session.Release(ctx, c)
}

// A candidate never leads with a fence at or below one it has seen: a
// claim answered with a lower fence (a store whose data went back) is
// reported as ErrFenceWentBack, released, and retried; the candidate leads
// again once the store's fences are above the ones it saw.
func TestClaimWithAFenceThatWentBackIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.NewStore()
		// Earlier terms, so that the candidate's own fence is above 1.
		other := mustElector(t, store.NewClient(), election.Config{TTL: 10 * time.Second})
		for range 3 {
			o := mustCandidate(t, other, election.CandidateConfig{Name: "job", ID: "other"})
			if err := o.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := o.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		b := &regressingBackend{Client: store.NewClient()}
		el := mustElector(t, b, election.Config{TTL: 10 * time.Second})
		c := mustCandidate(t, el, election.CandidateConfig{Name: "job", ID: "a"})
		events := c.Events()
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		first, ok := c.Term()
		if !ok || first.Fence <= 1 {
			t.Fatalf("a's first term %+v, want one with a fence above 1", first)
		}
		b.regress.Store(true)
		if err := c.Resign(context.Background()); err != nil {
			t.Fatal(err)
		}
		wentBack, firstClaim := false, true
		for !wentBack {
			select {
			case ev := <-events:
				if ev.Kind == election.EventClaimed && firstClaim && ev.Fence == first.Fence {
					firstClaim = false // the first term's own event
					continue
				}
				if ev.Kind == election.EventClaimed && ev.Fence <= first.Fence {
					t.Fatalf("a claimed with fence %d, not above its earlier %d", ev.Fence, first.Fence)
				}
				if ev.Kind == election.EventClaimFailed && errors.Is(ev.Err, election.ErrFenceWentBack) {
					if !errors.Is(ev.Err, election.ErrUnavailable) {
						t.Fatalf("claim failure %v does not wrap ErrUnavailable", ev.Err)
					}
					wentBack = true
				}
			case <-time.After(time.Minute):
				t.Fatal("no claim failed with ErrFenceWentBack within a minute")
			}
		}
		if c.IsLeader() {
			t.Fatal("a leads with a fence that went back")
		}
		b.regress.Store(false)
		deadline := time.Now().Add(time.Minute)
		for !c.IsLeader() {
			if time.Now().After(deadline) {
				t.Fatal("a did not lead again once the store's fences were above the ones it saw")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if now, _ := c.Term(); now.Fence <= first.Fence {
			t.Fatalf("a's new term has fence %d, not above %d", now.Fence, first.Fence)
		}
		now, _ := c.Term()
		for _, h := range store.Holds() {
			if h.HolderID == "a" && h.End == memory.StillHeld && h.Fence != now.Fence {
				t.Fatalf("a refused claim is still held: %+v", h)
			}
		}
		closeAll(t, el, other)
	})
}
