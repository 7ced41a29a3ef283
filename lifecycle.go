package election

import (
	"errors"
	"fmt"
	"time"
)

// The candidate's life, as one pure function: [step] takes the lifecycle
// state and one input and returns the next state and the effects to carry
// out. It does no I/O, reads no clock and starts no goroutine; the driver
// (driver.go) runs the effects and feeds their results back as inputs.
//
//	Idle ──Start──▶ Claiming ──won──────────────────────────▶ Leading ──renew fails──▶ Uncertain
//	                 ▲  │  │                                    ▲ │  ▲                   │  │
//	     vacancy,    │  │  └─in line──▶ Queued ──first in line──┘ │  └────renew ok───────┘  │
//	     retry timer │  │ taken, failed                           │                         │
//	                 │  ▼                                         │ Stop, Resign, Close,    │ deadline,
//	             Campaigning                                      │ loss                    │ loss
//	                 ▲                                            ▼                         │
//	                 │                             SteppingDown ◀─────────────────────────────┘
//	                 │                  handlers cancelled; the claim is kept (and renewed)
//	                 │                                  │ last handler returned
//	                 │ after a loss                     ▼
//	                 └──────────────────────────── Releasing ──after Resign──▶ Resigned ──another leads,
//	                                                    │                                   or one TTL──▶ Claiming
//	                                                    └──after Stop or Close──▶ Stopped
//
// Not drawn: Stop or Close in Idle, Campaigning or Resigned goes to Stopped
// at once; in Claiming it waits for the claim's answer (a claim won then is
// released without starting handlers); in Queued it takes the claim out of
// line (Releasing). A SteppingDown whose claim the store no longer holds
// (superseded, not owner, session expired) skips Releasing.

// State is where a candidate is in its life. [Candidate.State] reports it,
// and every [Event] carries the state it left the candidate in.
type State int

// The states of a candidate. A candidate leads in StateLeading and
// StateUncertain only.
const (
	// StateIdle: created, not started.
	StateIdle State = iota
	// StateCampaigning: not leading; it claims when the watch shows a
	// vacancy or a retry timer fires.
	StateCampaigning
	// StateClaiming: a claim is on its way to the store.
	StateClaiming
	// StateQueued: its claim waits in the store's line (see [Queuer]); the
	// store write that ends the term ahead of it elects it.
	StateQueued
	// StateLeading: it holds the election and its renewals succeed.
	StateLeading
	// StateUncertain: it holds the election, but renewals are failing; the
	// deadline (last successful renewal's send time + TTL − DriftMargin) has
	// not passed. A successful renewal returns it to StateLeading with the
	// same term; the deadline ends the term.
	StateUncertain
	// StateSteppingDown: the term ended (Stop, Resign, Close or a loss):
	// handlers are cancelled and the claim is kept, and renewed while the
	// store answers, until the last of them returns.
	StateSteppingDown
	// StateReleasing: handlers have returned; the claim is being released
	// by token.
	StateReleasing
	// StateResigned: after Resign, it does not claim until another
	// candidate leads or one TTL has passed.
	StateResigned
	// StateStopped: stopped for good; it holds nothing in the store.
	StateStopped
)

var stateNames = [...]string{"idle", "campaigning", "claiming", "queued", "leading", "uncertain",
	"stepping-down", "releasing", "resigned", "stopped"}

// String returns the state's name, for logs and metric labels.
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// exit is where a step-down goes once the claim is settled.
type exit uint8

const (
	exitCampaign exit = iota // after a loss: campaign again
	exitResign               // after Resign: hold off, then campaign
	exitStop                 // after Stop or Close: stop
)

// Causes with which a term's context is cancelled when the candidate steps
// down of its own accord.
var (
	errResigned = errors.New("election: stepped down: Resign")
	errStopping = errors.New("election: stepped down: Stop or Close")
)

// lifecycle is the state step works on: plain data, owned by the driver.
type lifecycle struct {
	state State
	// term is the claim the candidate holds or has in line: set in Queued,
	// Leading, Uncertain, SteppingDown and Releasing.
	term *term
	// then is where Claiming, SteppingDown and Releasing go next.
	then exit
	// lost is set once the term is known lost (a loss, or the deadline
	// passing while stepping down); gone once the store is known not to
	// hold its claim, so there is nothing to release.
	lost, gone bool
	// confirmed is set once the watch has shown the term holding.
	confirmed bool
	// leader is the holder last seen (own term, watch or claim answer).
	leader *Leader
	// resigners wait for the release that ends a Resign.
	resigners []chan error
	failures  int    // consecutive failures, for backoff
	timer     uint64 // generation of the armed retry or hold-off timer

	id  string        // the candidate's ID
	ttl time.Duration // the elector's TTL: the hold-off after Resign
}

type inputKind uint8

const (
	inStart        inputKind = iota
	inStop                   // Stop or Close
	inResign                 // Resign; reply set
	inClaimed                // the answer to effClaim; claim set
	inRenewed                // a renewal's outcome for term; renew set
	inDeadline               // term's deadline passed (its context is already cancelled)
	inOverrun                // term's handlers still run past its deadline; overrun set
	inSessionLost            // the session carrying term expired
	inWatch                  // watch set
	inHandlersDone           // the last handler of term returned (after it ended); overrun set
	inReleased               // the answer to effRelease; err set
	inTimer                  // the retry or hold-off timer fired; gen set
)

var inputNames = [...]string{"start", "stop", "resign", "claimed", "renewed", "deadline", "overrun",
	"session-lost", "watch", "handlers-done", "released", "timer"}

func (k inputKind) String() string { return inputNames[k] }

type renewOutcome uint8

const (
	renewOK       renewOutcome = iota
	renewFailed                // outcome unknown: the store did not answer
	renewNotOwner              // the store no longer holds the claim
)

// input is one thing that happened to a candidate.
type input struct {
	kind    inputKind
	term    *term
	claim   claimResult
	renew   renewOutcome
	watch   WatchEvent
	reply   chan error
	err     error
	gen     uint64
	overrun time.Duration
}

// claimResult is the answer to a claim or enqueue.
type claimResult struct {
	term    *term       // the claim made, not started: set when err is nil
	holder  *Leader     // set when the claim waits in line behind holder
	taken   *TakenError // set when the election is held
	err     error       // any other failure
	latency time.Duration
}

type effectKind uint8

const (
	effClaim     effectKind = iota // claim (or enqueue); the answer comes back as inClaimed
	effStartTerm                   // start the term: deadline, renewal, handlers
	effQueue                       // the term's claim waits in line: wake on its session's loss
	effCancel                      // cancel the term's handlers with err as the cause
	effUntrack                     // stop renewing the term: the store no longer holds its claim
	effRelease                     // release the term's claim by token; the answer comes back as inReleased
	effAbandon                     // leave the term's claim to the elector to release in the background
	effArm                         // arm the timer: after d, or after a backoff of failures if d is 0
	effEmit                        // emit ev
	effReply                       // send err to each of replies
	effStopped                     // the candidate has stopped
)

// effect is one thing the driver must do.
type effect struct {
	kind     effectKind
	term     *term
	err      error
	ev       Event
	replies  []chan error
	gen      uint64
	d        time.Duration
	failures int
	queued   bool // effStartTerm: the store elected the claim from its line
}

// step is the candidate's whole lifecycle. It returns the next state and
// the effects to run, in order.
func step(state lifecycle, in input) (lifecycle, []effect) {
	return stepInto(state, in, nil)
}

// stepInto is step appending the effects to buf[:0], so that a driver can
// reuse one buffer across steps (an effect is a few hundred bytes).
func stepInto(state lifecycle, in input, buf []effect) (lifecycle, []effect) {
	m := stepper{s: state, out: buf[:0]}
	m.step(in)
	return m.s, m.out
}

// stepper collects one step's effects; its methods are the transitions.
type stepper struct {
	s   lifecycle
	out []effect
}

func (m *stepper) emit(ev Event) { m.out = append(m.out, effect{kind: effEmit, ev: ev}) }
func (m *stepper) do(e effect)   { m.out = append(m.out, e) }

// arm arms the timer after d, or after a backoff if d is 0; any timer armed
// before is void.
func (m *stepper) arm(d time.Duration) {
	m.s.timer++
	m.do(effect{kind: effArm, gen: m.s.timer, d: d, failures: m.s.failures})
}

// stopTimer makes any armed timer void.
func (m *stepper) stopTimer() { m.s.timer++ }

// claim sends a claim: Claiming, then campaign.
func (m *stepper) claim() {
	m.s.state, m.s.then = StateClaiming, exitCampaign
	m.emit(Event{Kind: EventClaiming})
	m.do(effect{kind: effClaim})
}

func (m *stepper) step(in input) {
	s := &m.s
	emit, do, arm, stopTimer := m.emit, m.do, m.arm, m.stopTimer
	out := &m.out

	// Every state answers a Resign it cannot act on at once.
	if in.kind == inResign && s.state != StateLeading && s.state != StateUncertain &&
		!(s.then == exitResign && (s.state == StateSteppingDown || s.state == StateReleasing)) {
		err := fmt.Errorf("%w: resign in state %v", ErrNotLeader, s.state)
		if s.state == StateStopped || s.then == exitStop && (s.state == StateClaiming || s.state == StateSteppingDown || s.state == StateReleasing) {
			err = fmt.Errorf("%w: resign: candidate stopping", ErrStopped)
		}
		do(effect{kind: effReply, replies: []chan error{in.reply}, err: err})
		return
	}
	// Stopped is for good: whatever its watch still delivers, a stopped
	// candidate reports nothing after its last event.
	if s.state == StateStopped {
		return
	}
	// Inputs about a term other than the current one are stale.
	switch in.kind {
	case inRenewed, inDeadline, inOverrun, inSessionLost, inHandlersDone, inReleased:
		if in.term == nil || in.term != s.term {
			return
		}
	case inTimer:
		if in.gen != s.timer {
			return
		}
	}

	before := s.leader
	switch {
	case in.kind != inWatch:
	case in.watch.Err != nil:
		emit(Event{Kind: EventWatchFailed, Err: in.watch.Err})
	case (s.state == StateLeading || s.state == StateUncertain) && !s.confirmed &&
		(in.watch.Leader == nil || in.watch.Leader.Fence < s.term.claim.Fence):
		// The event predates the term: the candidate itself leads.
	default:
		s.leader = in.watch.Leader
	}

	switch s.state {
	case StateIdle:
		switch in.kind {
		case inStart:
			s.state = StateClaiming
			s.then = exitCampaign
			emit(Event{Kind: EventStarted})
			do(effect{kind: effClaim})
		case inStop:
			s.state = StateStopped
			emit(Event{Kind: EventStopped})
			do(effect{kind: effStopped})
		}

	case StateCampaigning:
		switch in.kind {
		case inTimer:
			m.claim()
		case inWatch:
			switch w := in.watch; {
			case w.Err != nil:
				// Blind until the watch is back: claim after a backoff.
				s.failures++
				arm(0)
			case w.Leader == nil:
				stopTimer()
				m.claim()
			case w.ExpiresIn > 0:
				// The store does not push expiry: claim when it is due.
				arm(w.ExpiresIn + time.Millisecond)
			}
		case inStop:
			stopTimer()
			s.state = StateStopped
			emit(Event{Kind: EventStopped})
			do(effect{kind: effStopped})
		}

	case StateClaiming:
		switch in.kind {
		case inStop:
			s.then = exitStop
		case inClaimed:
			m.claimed(in.claim)
		}

	case StateQueued:
		t := s.term
		switch in.kind {
		case inWatch:
			switch l := in.watch.Leader; {
			case in.watch.Err != nil:
			case l != nil && l.Fence == t.claim.Fence && l.ID == t.info.ID:
				// First in line: the store elected the claim.
				s.state, s.confirmed = StateLeading, true
				s.failures = 0
				self := t.leader()
				s.leader = self
				do(effect{kind: effStartTerm, term: t, queued: true})
				emit(Event{Kind: EventClaimed, Fence: t.claim.Fence, TokenPrefix: t.info.TokenPrefix,
					Leader: self, Queued: true, TTL: s.ttl})
			case l == nil || l.Fence > t.claim.Fence:
				// Out of line: a later claim leads, or no one does. Leave
				// the claim to the elector and join again.
				do(effect{kind: effAbandon, term: t})
				s.term = nil
				m.claim()
			}
		case inSessionLost:
			// The line was dropped with the session: join anew.
			s.term = nil
			m.claim()
		case inStop:
			s.state, s.then = StateReleasing, exitStop
			emit(Event{Kind: EventSteppingDown, Fence: t.claim.Fence, TokenPrefix: t.info.TokenPrefix})
			do(effect{kind: effRelease, term: t})
		}

	case StateLeading, StateUncertain:
		m.leading(in)

	case StateSteppingDown:
		t := s.term
		switch in.kind {
		case inStop:
			s.then = exitStop
		case inResign:
			s.resigners = append(s.resigners[:len(s.resigners):len(s.resigners)], in.reply)
		case inRenewed:
			if in.renew == renewNotOwner {
				s.gone = true
				do(effect{kind: effUntrack, term: t})
			}
		case inSessionLost:
			s.gone = true
			do(effect{kind: effUntrack, term: t})
		case inWatch:
			if l := in.watch.Leader; in.watch.Err == nil && !s.gone && l != nil && l.Fence > t.claim.Fence {
				s.gone = true
				do(effect{kind: effUntrack, term: t})
			}
		case inDeadline:
			if !s.lost {
				s.lost = true
				emit(Event{Kind: EventLost, Reason: LossDeadline, Err: errDeadline, Fence: t.claim.Fence, TokenPrefix: t.info.TokenPrefix})
			}
		case inOverrun:
			emit(Event{Kind: EventHandlerOverrun, Overrun: in.overrun, Fence: t.claim.Fence, TokenPrefix: t.info.TokenPrefix})
		case inHandlersDone:
			ev := Event{Kind: EventHandlersReturned, Overrun: in.overrun, Fence: t.claim.Fence, TokenPrefix: t.info.TokenPrefix}
			if !s.gone {
				s.state = StateReleasing
				emit(ev)
				do(effect{kind: effRelease, term: t})
				break
			}
			m.settled(nil, ev)
		}

	case StateReleasing:
		switch in.kind {
		case inStop:
			s.then = exitStop
		case inResign:
			s.resigners = append(s.resigners[:len(s.resigners):len(s.resigners)], in.reply)
		case inReleased:
			t := s.term
			do(effect{kind: effUntrack, term: t})
			m.settled(in.err,
				Event{Kind: EventReleased, Err: in.err, Fence: t.claim.Fence, TokenPrefix: t.info.TokenPrefix})
		}

	case StateResigned:
		switch in.kind {
		case inTimer:
			m.claim()
		case inWatch:
			if l := in.watch.Leader; in.watch.Err == nil && l != nil && l.ID != s.id {
				// Another candidate took over: campaign again, which on a
				// store with a line means joining it now.
				stopTimer()
				m.claim()
			}
		case inStop:
			stopTimer()
			s.state = StateStopped
			emit(Event{Kind: EventStopped})
			do(effect{kind: effStopped})
		}
	}

	if in.kind == inWatch && in.watch.Err == nil && !sameLeader(before, s.leader) {
		emit(Event{Kind: EventLeaderChanged, Leader: s.leader})
	}
	for i := range *out {
		if (*out)[i].kind == effEmit {
			(*out)[i].ev.State = s.state
		}
	}
}

// claimed handles the answer to a claim.
func (m *stepper) claimed(r claimResult) {
	s, emit, do, arm := &m.s, m.emit, m.do, m.arm
	stopping := s.then == exitStop
	switch {
	case r.err == nil && r.taken == nil && r.holder == nil:
		t := r.term
		s.term, s.lost, s.gone, s.confirmed = t, false, false, false
		if stopping {
			// Won while stopping: release it without starting handlers.
			s.state = StateReleasing
			emit(Event{Kind: EventSteppingDown, Fence: t.claim.Fence, TokenPrefix: t.info.TokenPrefix})
			do(effect{kind: effRelease, term: t})
			return
		}
		s.state, s.failures = StateLeading, 0
		self := t.leader()
		s.leader = self
		do(effect{kind: effStartTerm, term: r.term})
		emit(Event{Kind: EventClaimed, Fence: t.claim.Fence, TokenPrefix: t.info.TokenPrefix,
			Latency: r.latency, TTL: s.ttl, Leader: self})
	case r.err == nil && r.taken == nil:
		t := r.term
		s.term = t
		s.leader = r.holder
		if stopping {
			s.state = StateReleasing
			emit(Event{Kind: EventSteppingDown, Fence: t.claim.Fence, TokenPrefix: t.info.TokenPrefix})
			do(effect{kind: effRelease, term: t})
			return
		}
		s.state, s.failures = StateQueued, 0
		do(effect{kind: effQueue, term: t})
		emit(Event{Kind: EventClaimTaken, Latency: r.latency, Leader: r.holder, Queued: true})
	case r.taken != nil:
		s.failures = 0
		ev := Event{Kind: EventClaimTaken, Latency: r.latency}
		if h := r.taken.Holder; h.ID != "" || h.Fence != 0 {
			ev.Leader = &h
			s.leader = &h
		} // else: the store refuses claims for now; no one leads
		if stopping {
			m.toStopped(ev)
			return
		}
		s.state = StateCampaigning
		emit(ev)
		if r.taken.ExpiresIn > 0 {
			// The store does not push expiry: claim when the holder's TTL
			// runs out.
			arm(r.taken.ExpiresIn + time.Millisecond)
		}
	default:
		if r.term != nil {
			// The claim may have been applied without our hearing of it.
			do(effect{kind: effAbandon, term: r.term})
		}
		ev := Event{Kind: EventClaimFailed, Err: r.err, Latency: r.latency}
		if stopping {
			m.toStopped(ev)
			return
		}
		s.state = StateCampaigning
		s.failures++
		emit(ev)
		arm(0)
	}
}

// toStopped stops a candidate that holds nothing, reporting ev and then
// the stop in one event: ev with State Stopped.
func (m *stepper) toStopped(ev Event) {
	m.s.state, m.s.term = StateStopped, nil
	m.emit(ev)
	m.do(effect{kind: effStopped})
}

// leading handles an input in Leading or Uncertain.
func (m *stepper) leading(in input) {
	s, emit, do := &m.s, m.emit, m.do
	t := s.term
	lose := func(reason LossReason, cause error, gone bool) {
		s.state, s.then, s.lost = StateSteppingDown, exitCampaign, true
		do(effect{kind: effCancel, term: t, err: cause})
		if gone {
			s.gone = true
			do(effect{kind: effUntrack, term: t})
		}
		emit(Event{Kind: EventLost, Reason: reason, Err: cause, Fence: t.claim.Fence, TokenPrefix: t.info.TokenPrefix})
	}
	switch in.kind {
	case inRenewed:
		switch {
		case in.renew == renewNotOwner:
			lose(LossNotOwner, fmt.Errorf("%w: renew: the store no longer holds the claim", ErrLost), true)
		case in.renew == renewFailed && s.state == StateLeading:
			s.state = StateUncertain
			emit(Event{Kind: EventUncertain, Err: in.err, Fence: t.claim.Fence, TokenPrefix: t.info.TokenPrefix})
		case in.renew == renewOK && s.state == StateUncertain:
			s.state = StateLeading
			emit(Event{Kind: EventRecovered, Fence: t.claim.Fence, TokenPrefix: t.info.TokenPrefix})
		}
	case inSessionLost:
		lose(LossSessionExpired, in.err, true)
	case inDeadline:
		// The store may still hold the claim: keep renewing it until the
		// handlers return, then release it.
		lose(LossDeadline, errDeadline, false)
	case inWatch:
		l := in.watch.Leader
		switch {
		case in.watch.Err != nil:
		case l != nil && l.Fence == t.claim.Fence && l.ID == t.info.ID:
			s.confirmed = true
		case l != nil && l.Fence > t.claim.Fence:
			lose(LossSuperseded, fmt.Errorf("%w: %q holds a newer term (fence %d)", ErrLost, l.ID, l.Fence), true)
		case s.confirmed && l == nil:
			lose(LossNotOwner, fmt.Errorf("%w: the store no longer holds the claim", ErrLost), true)
		case s.confirmed:
			lose(LossSuperseded, fmt.Errorf("%w: %q holds the election (fence %d)", ErrLost, l.ID, l.Fence), true)
		}
		// Otherwise the event predates the claim.
	case inStop, inResign:
		s.state, s.lost = StateSteppingDown, false
		cause := errStopping
		if in.kind == inResign {
			s.then, cause = exitResign, errResigned
			s.resigners = append(s.resigners[:len(s.resigners):len(s.resigners)], in.reply)
		} else {
			s.then = exitStop
		}
		do(effect{kind: effCancel, term: t, err: cause})
		emit(Event{Kind: EventSteppingDown, Fence: t.claim.Fence, TokenPrefix: t.info.TokenPrefix})
	}
}

// settled moves on once a step-down's claim is settled (released, or known
// gone): to Stopped, Resigned or Campaigning as s.then says. ev reports it.
func (m *stepper) settled(releaseErr error, ev Event) {
	s, emit, do, arm := &m.s, m.emit, m.do, m.arm
	if len(s.resigners) > 0 {
		do(effect{kind: effReply, replies: s.resigners, err: releaseErr})
		s.resigners = nil
	}
	s.term, s.lost, s.gone, s.confirmed = nil, false, false, false
	switch s.then {
	case exitStop:
		m.toStopped(ev)
		return
	case exitResign:
		s.state = StateResigned
		emit(ev)
		arm(s.ttl)
	default:
		// After a loss: campaign again after a backoff, so that a store
		// that keeps failing the candidate cannot make it churn; the watch
		// still reports a vacancy at once.
		s.state = StateCampaigning
		s.failures++
		emit(ev)
		if s.leader == nil {
			s.state = StateClaiming
			do(effect{kind: effClaim})
		} else {
			arm(0)
		}
	}
}

func sameLeader(a, b *Leader) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.ID == b.ID && a.Fence == b.Fence && a.Election == b.Election
}
