package memory_test

import (
	"errors"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// etcd-like: an unrenewed session expires exactly at its TTL, the watch is
// told at once, and the claim waiting in line holds the election from
// that same instant, with no write of its own.
func TestEtcdExpiryPushesAndElectsTheLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.NewStore()
		a, b, obs := store.NewClient(), store.NewClient(), store.NewClient()
		start := time.Now()
		sa, sb := openSession(t, a, ttl), openSession(t, b, ttl)
		ca := claim(t, sa, "job", "a")
		q, ok := sb.(election.Queuer)
		if !ok {
			t.Fatalf("etcd-mode session %T is not an election.Queuer", sb)
		}
		cb, holder, err := q.Enqueue(t.Context(), request("job", "b"))
		if err != nil || holder == nil || holder.ID != "a" {
			t.Fatalf("Enqueue behind a = %+v, %v", holder, err)
		}
		events := watch(t, obs, "job")
		if ev := next(t, events); holderID(ev) != "a" || ev.ExpiresIn != 0 {
			t.Fatalf("first event %+v, want a with no ExpiresIn (etcd pushes expiry)", ev)
		}

		time.Sleep(ttl / 2)
		if err := sb.Renew(t.Context(), nil); err != nil { // b's session outlives a's
			t.Fatal(err)
		}
		ev := next(t, events)
		if took := time.Since(start); took != ttl {
			t.Fatalf("a's session expired after %v, want exactly its TTL %v", took, ttl)
		}
		if holderID(ev) != "b" || ev.Leader.Fence != cb.Fence {
			t.Fatalf("after a's expiry the watch shows %+v, want b with its queued fence %d", ev.Leader, cb.Fence)
		}
		if err := sa.Renew(t.Context(), []election.Claim{ca}); !errors.Is(err, election.ErrSessionExpired) {
			t.Fatalf("Renew of the expired session = %v, want ErrSessionExpired", err)
		}

		time.Sleep(ttl / 4)
		if err := sb.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, events); ev.Leader != nil || time.Since(start) != ttl+ttl/4 {
			t.Fatalf("Close: watch shows %+v at %v, want vacant at once", ev.Leader, time.Since(start))
		}
		holds := store.Holds()
		if len(holds) != 2 {
			t.Fatalf("holds %+v, want a's and b's", holds)
		}
		wantHold(t, holds[0], "a", ca.Fence, start, start.Add(ttl), memory.EndExpiry)
		wantHold(t, holds[1], "b", cb.Fence, start.Add(ttl), start.Add(ttl+ttl/4), memory.EndSessionClose)
	})
}

// Redis-like: each claim has its own TTL, reported with every view of the
// holder; Renew extends claims one by one by token; Close does no I/O and
// leaves the claim; expiry is not pushed; Stop loses the data and Start
// quarantines claims for the claiming session's TTL.
func TestRedisExpiryIsPerKeyAndNotPushed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.NewStore(memory.WithExpiry(memory.RedisExpiry))
		a, b, obs := store.NewClient(), store.NewClient(), store.NewClient()
		start := time.Now()
		sa, sb := openSession(t, a, ttl), openSession(t, b, 2*ttl)
		if _, ok := sa.(election.Queuer); ok {
			t.Fatalf("Redis-mode session %T implements election.Queuer", sa)
		}
		ca := claim(t, sa, "job", "a")
		events := watch(t, obs, "job")
		if ev := next(t, events); holderID(ev) != "a" || ev.ExpiresIn != ttl {
			t.Fatalf("first event %+v, want a with ExpiresIn %v", ev, ttl)
		}

		time.Sleep(ttl / 4)
		_, err := sb.Claim(t.Context(), request("job", "b"))
		var taken *election.TakenError
		if !errors.As(err, &taken) || taken.Holder.ID != "a" || taken.ExpiresIn != 3*ttl/4 {
			t.Fatalf("Claim of a held key = %v, want a TakenError naming a with ExpiresIn %v", err, 3*ttl/4)
		}
		if err := sa.Renew(t.Context(), []election.Claim{ca}); err != nil {
			t.Fatalf("Renew: %v", err)
		}
		forged := election.Claim{Name: "job", Token: "not-a-token", Fence: ca.Fence}
		var notOwner *election.NotOwnerError
		if err := sa.Renew(t.Context(), []election.Claim{ca, forged}); !errors.As(err, &notOwner) ||
			len(notOwner.Claims) != 1 || notOwner.Claims[0] != forged {
			t.Fatalf("Renew of a held and a forged claim = %v, want a NotOwnerError listing the forged one only", err)
		}

		// Close does no I/O: it works on a cut link, and the claim stays.
		if err := a.Cut(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := sa.Close(t.Context()); err != nil {
			t.Fatalf("Close on a cut link: %v", err)
		}
		if err := sa.Renew(t.Context(), []election.Claim{ca}); !errors.Is(err, election.ErrSessionExpired) {
			t.Fatalf("Renew after Close = %v, want ErrSessionExpired", err)
		}
		// The renewal at TTL/4 set the expiry to 5/4 TTL.
		time.Sleep(ttl - time.Nanosecond)
		if got := leaderID(t, obs, "job"); got != "a" {
			t.Fatalf("a nanosecond before its renewed TTL ran out, leader %s, want a", got)
		}
		time.Sleep(ttl / 4) // no read meanwhile: the key's own timer ends it
		noEvent(t, events, "Redis pushes no expiry")
		if got := leaderID(t, obs, "job"); got != "<vacant>" {
			t.Fatalf("after its TTL ran out, leader %s, want vacant", got)
		}

		bClaimed := time.Now()
		cb := claim(t, sb, "job", "b")
		if ev := next(t, events); holderID(ev) != "b" || ev.ExpiresIn != 2*ttl {
			t.Fatalf("after b's claim the watch shows %+v, want b with ExpiresIn %v", ev, 2*ttl)
		}
		stopped := time.Now()
		if err := store.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, events); !errors.Is(ev.Err, election.ErrUnavailable) {
			t.Fatalf("watch after Stop: %+v, want an error wrapping ErrUnavailable", ev)
		}
		time.Sleep(ttl / 2)
		if err := store.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		if got := leaderID(t, obs, "job"); got != "<vacant>" {
			t.Fatalf("after a restart that lost the data, leader %s, want vacant", got)
		}
		time.Sleep(ttl / 2)
		_, err = sb.Claim(t.Context(), request("job", "b2"))
		if !errors.As(err, &taken) || taken.Holder.ID != "" || taken.Holder.Fence != 0 || taken.ExpiresIn != 3*ttl/2 {
			t.Fatalf("Claim during the quarantine = %v (%+v), want an empty holder and ExpiresIn %v (the rest of b's 2s TTL)", err, taken, 3*ttl/2)
		}
		time.Sleep(3 * ttl / 2)
		cb2 := claim(t, sb, "job", "b2")
		if cb2.Fence <= cb.Fence {
			t.Fatalf("fence after the restart %d, not above %d", cb2.Fence, cb.Fence)
		}

		holds := store.Holds()
		if len(holds) != 3 {
			t.Fatalf("holds %+v, want a's, b's and b2's", holds)
		}
		wantHold(t, holds[0], "a", ca.Fence, start, start.Add(ttl+ttl/4), memory.EndExpiry)
		wantHold(t, holds[1], "b", cb.Fence, bClaimed, stopped, memory.EndRestartLoss)
		wantHold(t, holds[2], "b2", cb2.Fence, started.Add(2*ttl), time.Time{}, memory.StillHeld)
	})
}

// consulExpiry returns how long after its opening the Consul-like store
// seeded with seed expired an unrenewed session, as the watch saw it.
func consulExpiry(t *testing.T, seed uint64) time.Duration {
	store := memory.NewStore(memory.WithExpiry(memory.ConsulExpiry), memory.WithRand(rand.NewPCG(seed, 7)))
	c := store.NewClient()
	start := time.Now()
	s := openSession(t, c, ttl)
	if _, ok := s.(election.Queuer); ok {
		t.Fatalf("Consul-mode session %T implements election.Queuer", s)
	}
	claim(t, s, "job", "a")
	events := watch(t, c, "job")
	next(t, events)
	if ev := next(t, events); ev.Leader != nil {
		t.Fatalf("watch shows %+v, want the session's expiry", ev.Leader)
	}
	took := time.Since(start)
	if h := store.Holds(); len(h) != 1 || h[0].End != memory.EndExpiry || !h[0].To.Equal(start.Add(took)) {
		t.Fatalf("holds %+v, want one ended by expiry when the watch saw it", h)
	}
	return took
}

// Consul-like: an unrenewed session is invalidated between TTL and 2×TTL
// after it was opened, at a time the seed decides; the watch is told.
func TestConsulExpiryIsDrawnBetweenTTLAndTwiceTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seen := map[time.Duration]bool{}
		for seed := range uint64(20) {
			took := consulExpiry(t, seed)
			if took < ttl || took > 2*ttl {
				t.Fatalf("seed %d: session expired after %v, outside [TTL, 2×TTL] = [%v, %v]", seed, took, ttl, 2*ttl)
			}
			if again := consulExpiry(t, seed); again != took {
				t.Fatalf("seed %d expired a session after %v, then after %v: not replayable", seed, took, again)
			}
			seen[took] = true
		}
		if len(seen) < 10 {
			t.Fatalf("20 seeds gave only %d expiry times %v: the time is not drawn", len(seen), seen)
		}
	})
}

// Consul-like: a claim on a held election names the holder without a TTL
// (expiry is pushed); Close deletes the session's claims and tells
// watchers; a restart keeps the data and gives sessions 2×TTL.
func TestConsulCloseAndRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.NewStore(memory.WithExpiry(memory.ConsulExpiry), memory.WithRand(rand.NewPCG(1, 2)))
		a, b := store.NewClient(), store.NewClient()
		sa, sb := openSession(t, a, ttl), openSession(t, b, ttl)
		ca := claim(t, sa, "job", "a")
		_, err := sb.Claim(t.Context(), request("job", "b"))
		var taken *election.TakenError
		if !errors.As(err, &taken) || taken.Holder.ID != "a" || taken.ExpiresIn != 0 {
			t.Fatalf("Claim of a held election = %v, want a TakenError naming a without ExpiresIn", err)
		}
		if err := store.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * ttl)
		if err := store.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		events := watch(t, b, "job")
		if ev := next(t, events); holderID(ev) != "a" {
			t.Fatalf("after a restart the watch shows %+v, want a (Consul keeps its data)", ev.Leader)
		}
		// Only a's session is left to expire, 2×TTL after the start;
		// b's would expire at the same instant, so keep it alive.
		time.Sleep(ttl)
		if err := sb.Renew(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, events); ev.Leader != nil || time.Since(started) != 2*ttl {
			t.Fatalf("watch shows %+v after %v, want vacant 2×TTL after the start", ev.Leader, time.Since(started))
		}
		cb := claim(t, sb, "job", "b")
		next(t, events)
		if err := sb.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, events); ev.Leader != nil {
			t.Fatalf("after Close the watch shows %+v, want vacant", ev.Leader)
		}
		holds := store.Holds()
		if len(holds) != 2 || holds[0].Fence != ca.Fence || holds[0].End != memory.EndExpiry ||
			holds[1].Fence != cb.Fence || holds[1].End != memory.EndSessionClose {
			t.Fatalf("holds %+v, want a's ended by expiry and b's by session close", holds)
		}
	})
}

// A session is gone once its TTL has run out on the store's clock, whether
// or not its expiry timer has run yet: a renewal that arrives at that
// instant fails every time, and one a nanosecond earlier succeeds, so the
// outcome does not depend on which goroutine the scheduler runs first.
func TestSessionExpiryDependsOnlyOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := memory.New()
		for i := range 50 {
			s := openSession(t, c, ttl)
			time.Sleep(ttl - time.Nanosecond)
			if err := s.Renew(t.Context(), nil); err != nil {
				t.Fatalf("round %d: Renew a nanosecond before the TTL ran out: %v", i, err)
			}
			time.Sleep(ttl)
			if err := s.Renew(t.Context(), nil); !errors.Is(err, election.ErrSessionExpired) {
				t.Fatalf("round %d: Renew just as the TTL ran out = %v, want ErrSessionExpired", i, err)
			}
		}
	})
}
