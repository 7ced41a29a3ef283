package election_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// outageRun leads, cuts the leader's link for outage starting phase after
// a successful renewal, heals it, and reports the events the candidate
// saw and whether it still leads with its first term.
func outageRun(t *testing.T, seed uint64, phase, outage time.Duration) (events []election.Event, kept bool) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		client := memory.New()
		var (
			mu      sync.Mutex
			renewed = make(chan struct{}, 1)
		)
		el := mustElector(t, client, election.Config{
			TTL:  10 * time.Second,
			Rand: rand.NewPCG(seed, 1),
			OnEvent: func(ev election.Event) {
				mu.Lock()
				events = append(events, ev)
				mu.Unlock()
				if ev.Kind == election.EventRenewed {
					select {
					case renewed <- struct{}{}:
					default:
					}
				}
			},
		})
		c := mustCandidate(t, el, election.CandidateConfig{Name: "job", ID: "a"})
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		first, ok := c.Term()
		if !ok {
			t.Fatal("not elected on an empty store")
		}
		synctest.Wait()
		<-renewed // the next successful renewal
		time.Sleep(phase)
		if err := client.Cut(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(outage)
		if err := client.Heal(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Second)
		now, ok := c.Term()
		kept = ok && now.Fence == first.Fence
		if err := el.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	return events, kept
}

// The Uncertain promise, exactly: an outage shorter than
// TTL − DriftMargin − RenewInterval×(1+RenewJitter) − RenewTimeout keeps
// the term, whenever it starts after a renewal: never EventLost, the same
// fence after. Where a renewal fails meanwhile, the leader reports
// EventUncertain and then EventRecovered. With the defaults and a 10 s TTL
// the bound is 10 − 1 − 3.33×1.1 − 1.67 = 3.67 s.
func TestUncertainOutageShorterThanBoundKeepsTheTerm(t *testing.T) {
	const (
		ttl      = 10 * time.Second
		drift    = ttl / 10
		interval = ttl / 3
		timeout  = interval / 2
	)
	bound := ttl - drift - interval*11/10 - timeout
	wentUncertain := 0
	for seed := uint64(1); seed <= 5; seed++ {
		for _, phase := range []time.Duration{0, time.Millisecond, interval / 3, interval / 2, interval} {
			events, kept := outageRun(t, seed, phase, bound-time.Millisecond)
			var uncertain, recovered, lost int
			for _, ev := range events {
				switch ev.Kind {
				case election.EventUncertain:
					uncertain++
				case election.EventRecovered:
					recovered++
				case election.EventLost:
					lost++
				}
			}
			if !kept || lost > 0 {
				t.Errorf("seed %d, outage of %v starting %v after a renewal: the term was not kept (lost events %d)", seed, bound-time.Millisecond, phase, lost)
			}
			if uncertain != recovered {
				t.Errorf("seed %d, phase %v: %d uncertain and %d recovered events, want as many", seed, phase, uncertain, recovered)
			}
			if uncertain > 0 {
				wentUncertain++
			}
		}
	}
	if wentUncertain == 0 {
		t.Fatal("no run went uncertain: the outages did not reach a failed renewal")
	}
	t.Logf("%d of 25 runs went uncertain and recovered", wentUncertain)
}

// The other side: an outage longer than TTL − DriftMargin from a renewal
// always ends the term, with EventLost. (One exactly that long ends at the
// deadline's instant, where a renewal sent at that same fake instant may
// win the tie and keep the term: its send time is the new anchor.)
func TestUncertainOutageLongerThanDeadlineLosesTheTerm(t *testing.T) {
	const ttl = 10 * time.Second
	events, kept := outageRun(t, 1, 0, ttl-ttl/10+time.Millisecond)
	if kept {
		t.Fatal("an outage of TTL − DriftMargin + 1ms right after a renewal kept the term")
	}
	for _, ev := range events {
		if ev.Kind == election.EventLost && ev.Reason == election.LossDeadline {
			return
		}
	}
	t.Fatal("no EventLost with reason deadline")
}
