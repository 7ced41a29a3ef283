package electionprom_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/eventtour"
	electionprom "github.com/electionkit/election/prometheus"
)

// seen is what the metrics said about a candidate just after one of its
// events.
type seen struct {
	ev        election.Event
	isLeader  float64
	stateOnes []string // the states whose election_candidate_state is 1
}

// TestTourMetrics runs the real events of a term in trouble (see package
// eventtour) through the metrics, reading them after every event: the
// gauges follow the candidate's state at each step (a leader whose
// renewals fail still leads), and the overrun is counted once and its
// lateness observed once.
func TestTourMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := electionprom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	var steps []seen
	probe := func(ev election.Event) {
		if ev.Candidate == "" {
			return
		}
		s := seen{ev: ev, isLeader: gauge(t, reg, "election_is_leader", ev.Candidate, "")}
		for _, st := range allStates {
			if gauge(t, reg, "election_candidate_state", ev.Candidate, st.String()) == 1 {
				s.stateOnes = append(s.stateOnes, st.String())
			}
		}
		steps = append(steps, s)
	}
	eventtour.Run(t, election.TeeEvents(m.OnEvent, probe))
	if t.Failed() {
		return
	}

	uncertain := false
	for _, s := range steps {
		leads := s.ev.State == election.StateLeading || s.ev.State == election.StateUncertain
		if want := map[bool]float64{true: 1, false: 0}[leads]; s.isLeader != want {
			t.Errorf("after %v of %s (state %v): election_is_leader = %v, want %v", s.ev.Kind, s.ev.Candidate, s.ev.State, s.isLeader, want)
		}
		if len(s.stateOnes) != 1 || s.stateOnes[0] != s.ev.State.String() {
			t.Errorf("after %v of %s: states at 1: %v, want only %v", s.ev.Kind, s.ev.Candidate, s.stateOnes, s.ev.State)
		}
		uncertain = uncertain || (s.ev.Kind == election.EventUncertain && s.isLeader == 1)
	}
	if !uncertain {
		t.Error("no uncertain step with election_is_leader 1")
	}

	const overrunHeader = `
# HELP election_handler_overrun_seconds How long past the term's deadline the handlers of a term returned, for terms whose handlers returned late.
# TYPE election_handler_overrun_seconds histogram
`
	// One late return, 115ms past the deadline; the Heir's prompt one is
	// not observed.
	var buckets strings.Builder
	cumulative := 0
	for _, le := range electionprom.DefaultOverrunBuckets {
		if le >= eventtour.Late.Seconds() {
			cumulative = 1
		}
		fmt.Fprintf(&buckets, "election_handler_overrun_seconds_bucket{election=\"jobs\",le=\"%g\"} %d\n", le, cumulative)
	}
	expected := overrunHeader + buckets.String() + `election_handler_overrun_seconds_bucket{election="jobs",le="+Inf"} 1
election_handler_overrun_seconds_sum{election="jobs"} 0.115
election_handler_overrun_seconds_count{election="jobs"} 1
# HELP election_handler_overruns_total Terms whose handlers still ran past the term's deadline, when the store may elect another leader and only fencing protects their writes.
# TYPE election_handler_overruns_total counter
election_handler_overruns_total{election="jobs"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected),
		"election_handler_overrun_seconds", "election_handler_overruns_total"); err != nil {
		t.Error(err)
	}
	// Everyone has stopped: no one leads.
	for _, id := range []string{eventtour.Stubborn, eventtour.Heir, eventtour.Idle} {
		if v := gauge(t, reg, "election_candidate_state", id, "stopped"); v != 1 {
			t.Errorf("%s: election_candidate_state{state=\"stopped\"} = %v, want 1", id, v)
		}
		if v := gauge(t, reg, "election_is_leader", id, ""); v != 0 {
			t.Errorf("%s: election_is_leader = %v, want 0", id, v)
		}
	}
	if n := testutil.CollectAndCount(m, "election_candidate_state"); n != 3*len(allStates) {
		t.Errorf("%d election_candidate_state series, want %d (every state of 3 candidates)", n, 3*len(allStates))
	}
}

var allStates = []election.State{
	election.StateIdle, election.StateCampaigning, election.StateClaiming, election.StateQueued,
	election.StateLeading, election.StateUncertain, election.StateSteppingDown, election.StateReleasing,
	election.StateResigned, election.StateStopped,
}

// gauge returns the value of the gauge name of election "jobs" for
// candidate (and state, if not empty), or -1 if there is no such series.
// It may be called from an OnEvent hook: it fails t without stopping it.
func gauge(t *testing.T, reg *prometheus.Registry, name, candidate, state string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Error(err)
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				switch {
				case lp.GetName() == "election" && lp.GetValue() != eventtour.Election,
					lp.GetName() == "candidate" && lp.GetValue() != candidate,
					lp.GetName() == "state" && lp.GetValue() != state:
					continue series
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}
