package memory_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

const (
	requestLatency  = 100 * time.Millisecond
	responseLatency = 200 * time.Millisecond
)

// An operation takes request + response latency. A context that ends
// while the request travels fails it unapplied; one that ends while the
// response travels fails it although the store applied it.
func TestLatencyAndUnknownOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.NewStore()
		slow, obs := store.NewClient(), store.NewClient()
		if err := slow.SetLatency(requestLatency, responseLatency); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		s := openSession(t, slow, ttl)
		if took := time.Since(start); took != requestLatency+responseLatency {
			t.Fatalf("OpenSession took %v, want %v", took, requestLatency+responseLatency)
		}

		start = time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), requestLatency/2)
		_, err := s.Claim(ctx, request("job", "lost-request"))
		cancel()
		if !errors.Is(err, election.ErrUnavailable) || time.Since(start) != requestLatency/2 {
			t.Fatalf("Claim whose context ended on the way: %v after %v, want ErrUnavailable after %v", err, time.Since(start), requestLatency/2)
		}
		if got := leaderID(t, obs, "job"); got != "<vacant>" {
			t.Fatalf("a request lost on the way was applied: leader %s", got)
		}

		start = time.Now()
		ctx, cancel = context.WithTimeout(t.Context(), requestLatency+responseLatency/2)
		_, err = s.Claim(ctx, request("job", "lost-response"))
		cancel()
		if !errors.Is(err, election.ErrUnavailable) || time.Since(start) != requestLatency+responseLatency/2 {
			t.Fatalf("Claim whose response was lost: %v after %v, want ErrUnavailable", err, time.Since(start))
		}
		if got := leaderID(t, obs, "job"); got != "lost-response" {
			t.Fatalf("a claim whose response was lost was not applied: leader %s", got)
		}
		holds := store.Holds()
		if len(holds) != 1 || !holds[0].From.Equal(start.Add(requestLatency)) {
			t.Fatalf("holds %+v, want the claim held from when its request arrived (%v)", holds, start.Add(requestLatency))
		}
		// The core's way out of an unknown outcome: release by token.
		if err := s.Release(t.Context(), election.Claim{Name: "job", Token: request("job", "lost-response").Token}); err != nil {
			t.Fatalf("Release by token of the claim whose response was lost: %v", err)
		}

		if err := slow.SetLatency(-time.Millisecond, 0); !errors.Is(err, election.ErrInvalidArgument) {
			t.Fatalf("SetLatency(-1ms) = %v, want ErrInvalidArgument", err)
		}
	})
}

// Watch events reach a slow client the response latency after the store
// applied the change, in order, also when the latency drops meanwhile.
func TestLatencyDelaysWatchEventsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.NewStore()
		slow, fast := store.NewClient(), store.NewClient()
		if err := slow.SetLatency(0, responseLatency); err != nil {
			t.Fatal(err)
		}
		events := watch(t, slow, "job")
		next(t, events) // vacant
		s := openSession(t, fast, ttl)

		start := time.Now()
		c := claim(t, s, "job", "a")
		time.Sleep(10 * time.Millisecond)
		if err := s.Release(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		if err := slow.SetLatency(0, 0); err != nil {
			t.Fatal(err)
		}
		claim(t, s, "job", "b") // due at once, but after the two before it

		want := []struct {
			holder string
			at     time.Duration
		}{{"a", responseLatency}, {"<vacant>", responseLatency + 10*time.Millisecond}, {"b", responseLatency + 10*time.Millisecond}}
		for i, w := range want {
			ev := next(t, events)
			if holderID(ev) != w.holder || time.Since(start) != w.at {
				t.Fatalf("event %d: %s at %v, want %s at %v", i, holderID(ev), time.Since(start), w.holder, w.at)
			}
		}
	})
}

// A cut loses the events still in flight: the watch fails at once. A
// response held by the cut arrives after Heal.
func TestCutLosesEventsInFlightAndHoldsResponses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.NewStore()
		slow, fast := store.NewClient(), store.NewClient()
		if err := slow.SetLatency(0, responseLatency); err != nil {
			t.Fatal(err)
		}
		events := watch(t, slow, "job")
		next(t, events)
		claim(t, openSession(t, fast, ttl), "job", "a")
		time.Sleep(responseLatency / 2)
		start := time.Now()
		if err := slow.Cut(t.Context()); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, events); !errors.Is(ev.Err, election.ErrUnavailable) || time.Since(start) != 0 {
			t.Fatalf("after Cut the watch delivered %+v (leader %s) after %v, want the error at once, a's claim lost in flight",
				ev, holderID(ev), time.Since(start))
		}
		if err := slow.Heal(t.Context()); err != nil {
			t.Fatal(err)
		}

		s := openSession(t, slow, ttl)
		done := make(chan error, 1)
		go func() {
			_, err := s.Claim(t.Context(), request("other", "b"))
			done <- err
		}()
		time.Sleep(responseLatency / 2) // the claim is applied; its response travels
		if err := slow.Cut(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(responseLatency)
		select {
		case err := <-done:
			t.Fatalf("Claim returned %v while its response was cut off", err)
		default:
		}
		if got := leaderID(t, fast, "other"); got != "b" {
			t.Fatalf("leader %s, want b: the store applied the claim before the cut", got)
		}
		if err := slow.Heal(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Claim after Heal: %v, want its held response", err)
		}
	})
}
