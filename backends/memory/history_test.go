package memory_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// Pauses and stops are recorded as outages; nothing expires during a
// pause, and what ran out expires on Resume: an etcd-like session then,
// a Redis-like key at its own expiry time (reads stop showing it then).
func TestOutagesAndExpiryAcrossAPause(t *testing.T) {
	for _, tc := range []struct {
		mode      memory.Expiry
		endsAtTTL bool // the hold's To is the TTL's end, not the Resume
	}{{memory.EtcdExpiry, false}, {memory.RedisExpiry, true}} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := memory.NewStore(memory.WithExpiry(tc.mode))
				c := store.NewClient()
				start := time.Now()
				claim(t, openSession(t, c, ttl), "job", "a")
				time.Sleep(ttl / 2)
				if err := store.Pause(t.Context()); err != nil {
					t.Fatal(err)
				}
				if store.State() != memory.StatePaused {
					t.Fatalf("state %v after Pause", store.State())
				}
				time.Sleep(ttl)
				synctest.Wait()
				if h := store.Holds(); h[0].End != memory.StillHeld {
					t.Fatalf("the claim ended during the pause: %+v", h[0])
				}
				if err := store.Resume(t.Context()); err != nil {
					t.Fatal(err)
				}
				resumed := time.Now()
				want := resumed
				if tc.endsAtTTL {
					want = start.Add(ttl)
				}
				if h := store.Holds(); h[0].End != memory.EndExpiry || !h[0].To.Equal(want) {
					t.Fatalf("after Resume the hold is %+v, want ended by expiry at %v", h[0], want)
				}
				if got := leaderID(t, c, "job"); got != "<vacant>" {
					t.Fatalf("after Resume leader %s, want vacant", got)
				}

				if err := store.Stop(t.Context()); err != nil {
					t.Fatal(err)
				}
				if err := store.Pause(t.Context()); err == nil {
					t.Fatalf("Pause of a stopped store succeeded")
				}
				if _, err := c.Leader(t.Context(), "job"); !errors.Is(err, election.ErrUnavailable) {
					t.Fatalf("Leader on a stopped store = %v, want ErrUnavailable", err)
				}
				time.Sleep(ttl)
				if err := store.Start(t.Context()); err != nil {
					t.Fatal(err)
				}
				want2 := []memory.Outage{
					{State: memory.StatePaused, From: start.Add(ttl / 2), To: resumed},
					{State: memory.StateDown, From: resumed, To: resumed.Add(ttl)},
				}
				got := store.Outages()
				if len(got) != len(want2) || got[0] != want2[0] || got[1] != want2[1] || store.State() != memory.StateUp {
					t.Fatalf("outages %+v, state %v; want %+v, up", got, store.State(), want2)
				}
			})
		})
	}
}

// The history keeps a token prefix, never the token.
func TestHoldsKeepOnlyATokenPrefix(t *testing.T) {
	store := memory.NewStore()
	c := store.NewClient()
	s := openSession(t, c, time.Minute)
	cl := claim(t, s, "job", "a")
	if err := s.Release(t.Context(), cl); err != nil {
		t.Fatal(err)
	}
	h := store.Holds()
	if len(h) != 1 || h[0].TokenPrefix != cl.Token[:8] || h[0].End != memory.EndRelease || h[0].To.Before(h[0].From) {
		t.Fatalf("holds %+v, want one released hold with token prefix %q", h, cl.Token[:8])
	}
	h[0].HolderID = "changed"
	if store.Holds()[0].HolderID != "a" {
		t.Fatalf("Holds returned the store's own slice")
	}
}

// OpenSession of a store with an Expiry that is not one of the constants
// fails instead of picking a mode.
func TestUnknownExpiryIsAnError(t *testing.T) {
	c := memory.New(memory.WithExpiry(memory.Expiry(42)))
	if _, err := c.OpenSession(t.Context(), time.Second); !errors.Is(err, election.ErrInvalidArgument) {
		t.Fatalf("OpenSession with Expiry(42) = %v, want ErrInvalidArgument", err)
	}
}

// A release that elects the next claim in line ends one term and starts
// the next at the same instant, also on the system clock.
func TestQueuedTermStartsWhenThePreviousEnds(t *testing.T) {
	store := memory.NewStore()
	sa, sb := openSession(t, store.NewClient(), time.Minute), openSession(t, store.NewClient(), time.Minute)
	ca := claim(t, sa, "job", "a")
	if _, _, err := sb.(election.Queuer).Enqueue(t.Context(), request("job", "b")); err != nil {
		t.Fatal(err)
	}
	if err := sa.Release(t.Context(), ca); err != nil {
		t.Fatal(err)
	}
	h := store.Holds()
	if len(h) != 2 || h[0].End != memory.EndRelease || !h[1].From.Equal(h[0].To) || h[1].End != memory.StillHeld {
		t.Fatalf("holds %+v, want a's released and b's starting at that instant", h)
	}
}
