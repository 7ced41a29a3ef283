package memory_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

func startCandidate(t *testing.T, el *election.Elector, name, id string) *election.Candidate {
	t.Helper()
	c, err := el.NewCandidate(election.CandidateConfig{Name: name, ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c
}

// The core on each mode, in a synctest bubble: the leader's process
// crashes without releasing; the store ends its term by expiry, no earlier
// than TTL after its last renewal, and the waiting candidate holds the
// election from then on: at once where expiry is pushed (in line in etcd
// mode, by a claim in Consul mode), 1ms after the TTL it was told where it
// is not (Redis mode).
func TestCoreCrashTakeoverInEveryMode(t *testing.T) {
	for _, tc := range []struct {
		mode    memory.Expiry
		lag     time.Duration // how long after TTL the store may expire
		takeNew time.Duration // how long after the expiry the next term starts
	}{
		{memory.EtcdExpiry, 0, 0},
		{memory.RedisExpiry, 0, time.Millisecond},
		{memory.ConsulExpiry, ttl, 0},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := memory.NewStore(memory.WithExpiry(tc.mode), memory.WithRand(rand.NewPCG(3, 4)))
				clientA, clientB := store.NewClient(), store.NewClient()
				cfg := election.Config{TTL: ttl, RenewInterval: ttl / 4, RenewJitter: 0.1}
				elA, err := election.New(clientA, cfg)
				if err != nil {
					t.Fatal(err)
				}
				elB, err := election.New(clientB, cfg)
				if err != nil {
					t.Fatal(err)
				}
				// On a failed check, close both before the bubble ends, so
				// that the failure is reported rather than a deadlock.
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 2*ttl)
					defer cancel()
					_ = elA.Close(ctx)
					_ = elB.Close(ctx)
				})
				a := startCandidate(t, elA, "job", "a")
				b := startCandidate(t, elB, "job", "b")
				time.Sleep(3 * ttl) // a leads and renews; b waits
				if !a.IsLeader() || b.IsLeader() {
					t.Fatalf("after 3 TTLs: a leads %v, b leads %v; want a only", a.IsLeader(), b.IsLeader())
				}
				crash := time.Now()
				if err := clientA.Close(); err != nil {
					t.Fatal(err)
				}
				for !b.IsLeader() {
					if time.Since(crash) > 3*ttl {
						t.Fatalf("b not elected 3 TTLs after a crashed")
					}
					time.Sleep(time.Millisecond)
				}

				holds := store.Holds()
				if len(holds) != 2 {
					t.Fatalf("holds %+v, want a's and b's", holds)
				}
				ha, hb := holds[0], holds[1]
				if ha.HolderID != "a" || ha.End != memory.EndExpiry || hb.HolderID != "b" || hb.End != memory.StillHeld {
					t.Fatalf("holds %+v, want a's ended by expiry, then b's", holds)
				}
				// a renewed at least every RenewInterval×(1+RenewJitter)
				// until the crash.
				maxGap := time.Duration(float64(cfg.RenewInterval) * (1 + cfg.RenewJitter))
				if ended := ha.To.Sub(crash); ended < ttl-maxGap || ended > ttl+tc.lag {
					t.Fatalf("a's term ended %v after the crash, want within [TTL − longest renewal gap, TTL + lag] = [%v, %v]",
						ended, ttl-maxGap, ttl+tc.lag)
				}
				if gap := hb.From.Sub(ha.To); gap != tc.takeNew {
					t.Fatalf("b's term began %v after a's ended, want %v", gap, tc.takeNew)
				}
				if hb.Fence <= ha.Fence {
					t.Fatalf("b's fence %d is not above a's %d", hb.Fence, ha.Fence)
				}

				ctx, cancel := context.WithTimeout(t.Context(), ttl)
				defer cancel()
				_ = elA.Close(ctx) // a's client is gone: its release fails, as after a crash
				if err := elB.Close(ctx); err != nil {
					t.Fatalf("Close b: %v", err)
				}
				// Close ends b's claim with the session where the session's
				// end hands it over (election.SessionEnder), else releases it.
				want := memory.EndSessionClose
				if store.Expiry() == memory.RedisExpiry {
					want = memory.EndRelease
				}
				if h := store.Holds(); h[1].End != want {
					t.Fatalf("after b's elector closed, its hold is %+v, want ended by %v", h[1], want)
				}
			})
		})
	}
}
