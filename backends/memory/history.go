package memory

import (
	"slices"
	"strconv"
	"time"

	"github.com/electionkit/election"
)

// Hold is one term as the store saw it: an interval during which the store
// held an election for one claim. Times are the store's clock. A term that
// begins because the previous one ended (a claim in line, in etcd mode)
// begins at the instant the previous one ended: its From equals the
// previous To.
type Hold struct {
	// Election is the election name.
	Election string
	// HolderID is the holder's candidate ID.
	HolderID string
	// Fence is the term's fencing token.
	Fence uint64
	// TokenPrefix is the first characters of the owner token
	// ([election.TokenPrefix]); the whole token is never recorded.
	TokenPrefix string
	// From is when the store made the claim the holder.
	From time.Time
	// To is when the term ended; zero while it is held.
	To time.Time
	// End is how the term ended; [StillHeld] while it is held.
	End HoldEnd
}

// HoldEnd is how a term ended.
type HoldEnd int

const (
	// StillHeld: the term has not ended.
	StillHeld HoldEnd = iota
	// EndRelease: the holder released the claim with its token.
	EndRelease
	// EndExpiry: the claim's TTL (Redis mode) or its session's TTL (etcd
	// and Consul modes) ran out without a renewal. In Redis mode To is the
	// key's expiry time, when reads stopped showing it.
	EndExpiry
	// EndSessionClose: Session.Close ended the session that owned the
	// claim (etcd and Consul modes; in Redis mode Close leaves claims).
	EndSessionClose
	// EndRestartLoss: the store was stopped and lost its data (Redis mode).
	EndRestartLoss
)

// String returns a short lower-case name for the end.
func (e HoldEnd) String() string {
	switch e {
	case StillHeld:
		return "held"
	case EndRelease:
		return "release"
	case EndExpiry:
		return "expiry"
	case EndSessionClose:
		return "session close"
	case EndRestartLoss:
		return "restart loss"
	}
	return "HoldEnd(" + strconv.Itoa(int(e)) + ")"
}

// State is the store's process state.
type State int

const (
	// StateUp: the store answers and expires.
	StateUp State = iota
	// StatePaused: frozen by [Store.Pause]; operations wait and nothing
	// expires.
	StatePaused
	// StateDown: killed by [Store.Stop]; operations fail with
	// [election.ErrUnavailable].
	StateDown
)

// String returns "up", "paused" or "down".
func (st State) String() string {
	switch st {
	case StateUp:
		return "up"
	case StatePaused:
		return "paused"
	case StateDown:
		return "down"
	}
	return "State(" + strconv.Itoa(int(st)) + ")"
}

// Outage is an interval during which the store was not up, on its clock.
type Outage struct {
	// State is StatePaused or StateDown.
	State State
	// From is when the store entered State.
	From time.Time
	// To is when it left State; zero while it is still in it.
	To time.Time
}

// Holds returns every term the store has granted, in the order they began.
// The slice is a copy: later changes do not show in it.
func (s *Store) Holds() []Hold {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.holds)
}

// Outages returns every pause and stop of the store, in order. The slice
// is a copy.
func (s *Store) Outages() []Outage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.outages)
}

// State returns the store's current state.
func (s *Store) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// setStateLocked is the one place the store changes state: it records the
// outage and wakes every operation waiting on the state.
func (s *Store) setStateLocked(to State) {
	now := s.clock.Now()
	if s.state != StateUp {
		s.outages[len(s.outages)-1].To = now
	}
	if to != StateUp {
		s.outages = append(s.outages, Outage{State: to, From: now})
	}
	s.state = to
	s.signalLocked()
}

// startHoldLocked records the start of e's term at the store time at.
func (s *Store) startHoldLocked(e *entry, at time.Time) {
	e.hold = len(s.holds)
	s.holds = append(s.holds, Hold{
		Election:    e.req.Name,
		HolderID:    e.req.ID,
		Fence:       e.fence,
		TokenPrefix: election.TokenPrefix(e.req.Token),
		From:        at,
	})
}

// endHoldLocked records the end of e's term.
func (s *Store) endHoldLocked(e *entry, reason HoldEnd, at time.Time) {
	h := &s.holds[e.hold]
	h.To, h.End = at, reason
	e.hold = -1
}
