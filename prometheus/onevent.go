package electionprom

import (
	"time"

	"github.com/electionkit/election"
)

// OnEvent updates the metrics for ev; pass it as [election.Config.OnEvent].
// It is safe for concurrent use, does no I/O and never blocks beyond a
// short mutex. Every event of a candidate sets election_is_leader and
// election_candidate_state from the state it carries; events of kinds it
// does not know change nothing else. A nil m ignores every event.
func (m *Metrics) OnEvent(ev election.Event) {
	if m == nil {
		return
	}
	if ev.Election != "" {
		m.touch(ev.Election)
	}
	if ev.Candidate != "" {
		m.setState(ev.Election, ev.Candidate, ev.State)
	}
	switch ev.Kind {
	case election.EventClaimed:
		if !ev.Queued {
			// A term from the store's line made no claim of its own:
			// its claim was counted (taken) when it joined the line.
			m.claims.WithLabelValues(ev.Election, OutcomeSuccess).Inc()
			m.observeClaim(ev)
		}
		m.seeTerm(ev.Election, ev.Fence, true)
	case election.EventClaimTaken:
		m.claims.WithLabelValues(ev.Election, OutcomeTaken).Inc()
		m.observeClaim(ev)
		if ev.Leader != nil {
			m.seeTerm(ev.Election, ev.Leader.Fence, false)
		}
	case election.EventClaimFailed:
		m.claims.WithLabelValues(ev.Election, OutcomeError).Inc()
		if ev.Latency > 0 {
			// Zero when the attempt failed before reaching the store
			// (opening the session, say): no store time to record.
			m.observeClaim(ev)
		}
	case election.EventRenewed:
		m.renewals.WithLabelValues(OutcomeSuccess).Inc()
		m.renewLatency.Observe(seconds(ev.Latency))
	case election.EventRenewFailed:
		m.renewals.WithLabelValues(OutcomeFailure).Inc()
		m.renewLatency.Observe(seconds(ev.Latency))
	case election.EventLost:
		m.losses.WithLabelValues(ev.Election, reasonLabel(ev.Reason)).Inc()
	case election.EventHandlerOverrun:
		m.overruns.WithLabelValues(ev.Election).Inc()
	case election.EventHandlersReturned:
		if ev.Overrun > 0 {
			m.overrunTime.WithLabelValues(ev.Election).Observe(seconds(ev.Overrun))
		}
	case election.EventWatchFailed:
		m.watchFailures.WithLabelValues(ev.Election).Inc()
	case election.EventLeaderChanged:
		if ev.Leader != nil {
			m.seeTerm(ev.Election, ev.Leader.Fence, false)
		}
	}
}

func (m *Metrics) observeClaim(ev election.Event) {
	m.claimLatency.WithLabelValues(ev.Election).Observe(seconds(ev.Latency))
}

// touch creates every series of an election at zero the first time it is
// seen, so that alerts on increase() see the first loss or change.
func (m *Metrics) touch(name string) {
	m.mu.Lock()
	_, seen := m.lastFence[name]
	if !seen {
		m.lastFence[name] = 0
	}
	m.mu.Unlock()
	if seen {
		return
	}
	for _, o := range []string{OutcomeSuccess, OutcomeTaken, OutcomeError} {
		m.claims.WithLabelValues(name, o)
	}
	for _, r := range knownReasons {
		m.losses.WithLabelValues(name, string(r))
	}
	m.losses.WithLabelValues(name, ReasonOther)
	m.changes.WithLabelValues(name)
	m.watchFailures.WithLabelValues(name)
	m.overruns.WithLabelValues(name)
	m.overrunTime.WithLabelValues(name)
}

// setState makes st the candidate's state in election_candidate_state and
// election_is_leader. The first time a candidate is seen every state gets
// its series; after that only the two that change are written. The gauges
// are written under the mutex, so that two events of one candidate cannot
// leave two states at 1.
func (m *Metrics) setState(name, candidate string, st election.State) {
	label := stateLabel(st)
	key := candidateKey{name, candidate}
	m.mu.Lock()
	defer m.mu.Unlock()
	prev, seen := m.states[key]
	switch {
	case !seen:
		for _, s := range knownStates {
			m.state.WithLabelValues(name, candidate, s.String()).Set(0)
		}
	case prev != label:
		m.state.WithLabelValues(name, candidate, prev).Set(0)
	}
	m.states[key] = label
	m.state.WithLabelValues(name, candidate, label).Set(1)
	leading := 0.0
	if st == election.StateLeading || st == election.StateUncertain {
		leading = 1
	}
	m.isLeader.WithLabelValues(name, candidate).Set(leading)
}

func stateLabel(st election.State) string {
	for _, k := range knownStates {
		if st == k {
			return st.String()
		}
	}
	return StateOther
}

// seeTerm counts a leader change when fence is newer than every term seen
// of the election. The first term seen from outside (own is false) only
// sets the baseline: at start-up a follower learns the current leader,
// which is not a change. A term this process claimed (own) is a change.
func (m *Metrics) seeTerm(name string, fence uint64, own bool) {
	m.mu.Lock()
	last := m.lastFence[name]
	newer := fence > last
	if newer {
		m.lastFence[name] = fence
	}
	m.mu.Unlock()
	if newer && (own || last != 0) {
		m.changes.WithLabelValues(name).Inc()
	}
}

func reasonLabel(r election.LossReason) string {
	for _, k := range knownReasons {
		if r == k {
			return string(r)
		}
	}
	return ReasonOther
}

func seconds(d time.Duration) float64 { return d.Seconds() }
