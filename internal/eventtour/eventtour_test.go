package eventtour_test

import (
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/eventtour"
)

type step struct {
	kind    election.EventKind
	state   election.State
	overrun time.Duration
	failed  bool // Err set
}

// The tour produces, for each candidate, the transitions its package
// comment promises, with the exact overruns the adapters' tests rely on.
// Leader changes and watch failures are left out: the tests do not rely
// on how many there are.
func TestTour(t *testing.T) {
	tour := eventtour.Run(t, nil)
	want := map[string][]step{
		eventtour.Stubborn: {
			{kind: election.EventStarted, state: election.StateClaiming},
			{kind: election.EventClaimed, state: election.StateLeading},
			{kind: election.EventUncertain, state: election.StateUncertain, failed: true},
			{kind: election.EventRecovered, state: election.StateLeading},
			{kind: election.EventSteppingDown, state: election.StateSteppingDown},
			{kind: election.EventLost, state: election.StateSteppingDown, failed: true},
			{kind: election.EventHandlerOverrun, state: election.StateSteppingDown, overrun: eventtour.Overrun},
			{kind: election.EventHandlersReturned, state: election.StateReleasing, overrun: eventtour.Late},
			{kind: election.EventReleased, state: election.StateStopped, failed: true},
		},
		eventtour.Heir: {
			{kind: election.EventStarted, state: election.StateClaiming},
			{kind: election.EventClaimTaken, state: election.StateQueued},
			{kind: election.EventClaimed, state: election.StateLeading},
			{kind: election.EventSteppingDown, state: election.StateSteppingDown},
			{kind: election.EventHandlersReturned, state: election.StateReleasing},
			{kind: election.EventReleased, state: election.StateStopped},
		},
		eventtour.Idle: {
			{kind: election.EventStopped, state: election.StateStopped},
		},
	}
	got := map[string][]step{}
	for _, ev := range tour.Events {
		if ev.Candidate == "" || ev.Kind == election.EventLeaderChanged || ev.Kind == election.EventWatchFailed {
			continue
		}
		if ev.Election != eventtour.Election {
			t.Errorf("%v of %s in election %q, want %q", ev.Kind, ev.Candidate, ev.Election, eventtour.Election)
		}
		got[ev.Candidate] = append(got[ev.Candidate], step{kind: ev.Kind, state: ev.State, overrun: ev.Overrun, failed: ev.Err != nil})
	}
	for id, steps := range want {
		if len(got[id]) != len(steps) {
			t.Errorf("%s: got %d events %v, want %v", id, len(got[id]), got[id], steps)
			continue
		}
		for i, s := range steps {
			if got[id][i] != s {
				t.Errorf("%s event %d: got %+v, want %+v", id, i, got[id][i], s)
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("events of candidates %v, want %v", len(got), len(want))
	}
	overrun, _ := tour.Find(election.EventHandlerOverrun, eventtour.Stubborn)
	if overrun.Fence == 0 || overrun.TokenPrefix == "" {
		t.Errorf("overrun event %+v lacks its term's fence or token prefix", overrun)
	}
	if len(tour.Tokens) < 2 {
		t.Errorf("the store saw %d owner tokens, want at least 2", len(tour.Tokens))
	}
}
