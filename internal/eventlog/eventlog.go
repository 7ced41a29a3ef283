// Package eventlog decides how an election event is logged: its level, its
// message and its fields. The logging adapters (zaplog, slogevents) only
// translate that decision into their logger's types, so that they log the
// same lines, and neither can leak a token the other keeps out.
package eventlog

import (
	"fmt"
	"time"

	"github.com/electionkit/election"
)

// Level is the severity of an event's line.
type Level int8

// Levels, from routine traffic to what an operator must act on.
const (
	// Debug is routine traffic.
	Debug Level = iota
	// Info is a change an operator may want to see.
	Info
	// Warn is a failure the core retries, or a term in trouble.
	Warn
	// Error is a term that ended without a handover, or handlers that
	// outlive their term's deadline.
	Error
)

// Field keys, stable so that log queries can rely on them; zaplog
// documents each.
const (
	KeyElection    = "election"     // KeyElection is the election name.
	KeyCandidate   = "candidate"    // KeyCandidate is the candidate's ID.
	KeyOperation   = "operation"    // KeyOperation is the event kind.
	KeyState       = "state"        // KeyState is the candidate's state after the event.
	KeyTokenPrefix = "token_prefix" // KeyTokenPrefix is the owner token's prefix.
	KeyFence       = "fence"        // KeyFence is the term's fencing token.
	KeyLatency     = "latency"      // KeyLatency is the store operation's duration.
	KeyReason      = "reason"       // KeyReason is why leadership was lost.
	KeyLeader      = "leader"       // KeyLeader is the ID of the holder seen.
	KeyLeaderFence = "leader_fence" // KeyLeaderFence is the fence of the holder seen.
	KeyVacant      = "vacant"       // KeyVacant says no holder was seen.
	KeyTTL         = "ttl"          // KeyTTL is the TTL the store granted.
	KeyCount       = "claims"       // KeyCount is the claims a renewal covered.
	KeyQueued      = "queued"       // KeyQueued says the claim waits in, or came from, the line.
	KeyOverrun     = "overrun"      // KeyOverrun is how far past the deadline handlers ran.
	KeyError       = "error"        // KeyError is the event's error.
)

// Classify returns the level and message of ev. Failures the core retries
// are warnings; a loss of leadership is an error because the work it
// guarded stopped without a handover, and so are handlers still running
// past their term's deadline, because from then on only fencing keeps
// their writes from overlapping the next leader's.
func Classify(ev election.Event) (Level, string) {
	switch ev.Kind {
	case election.EventStarted:
		return Info, "election: campaign started"
	case election.EventClaimed:
		return Info, "election: leadership claimed"
	case election.EventClaimTaken:
		return Debug, "election: claim found the election held"
	case election.EventClaimFailed:
		return Warn, "election: claim failed, retrying"
	case election.EventRenewed:
		if ev.Err != nil {
			// The store answered, but no longer holds some claims:
			// the matching EventLost follows.
			return Warn, "election: session renewed, some claims not held"
		}
		return Debug, "election: session renewed"
	case election.EventRenewFailed:
		return Warn, "election: session renewal failed"
	case election.EventUncertain:
		return Warn, "election: renewals failing; leading until the term's deadline unless one succeeds"
	case election.EventRecovered:
		return Info, "election: renewal succeeded again; the term goes on"
	case election.EventLost:
		return Error, "election: leadership lost"
	case election.EventSteppingDown:
		return Info, "election: stepping down; the claim is kept until the handlers return"
	case election.EventHandlerOverrun:
		return Error, fmt.Sprintf("election: handlers of candidate %q in election %q (fence %d) still run %v past the term's deadline; "+
			"the store may elect another leader: only fencing protects writes now",
			ev.Candidate, ev.Election, ev.Fence, ev.Overrun)
	case election.EventHandlersReturned:
		if ev.Overrun > 0 {
			return Warn, fmt.Sprintf("election: handlers returned %v past the term's deadline", ev.Overrun)
		}
		return Debug, "election: handlers returned"
	case election.EventReleased:
		if ev.Err != nil {
			return Warn, "election: leadership released, store release failed"
		}
		return Info, "election: leadership released"
	case election.EventWatchFailed:
		return Warn, "election: watch failed, re-establishing"
	case election.EventLeaderChanged:
		return Info, "election: leader changed"
	case election.EventStopped:
		return Info, "election: candidate stopped"
	default:
		return Info, "election: event"
	}
}

// Encoder receives the fields of one event, in order.
type Encoder interface {
	String(key, v string)
	Uint64(key string, v uint64)
	Int(key string, v int)
	Duration(key string, v time.Duration)
	Bool(key string, v bool)
	// Error receives the event's error, logged under [KeyError].
	Error(err error)
}

// Encode passes the fields of ev to enc, leaving out those the event does
// not carry. It never passes a whole owner token, leader metadata or a
// credential: tokens appear only as the short prefix the core computes.
func Encode(ev election.Event, enc Encoder) {
	if ev.Election != "" {
		enc.String(KeyElection, ev.Election)
	}
	if ev.Candidate != "" {
		enc.String(KeyCandidate, ev.Candidate)
	}
	enc.String(KeyOperation, ev.Kind.String())
	if ev.Candidate != "" {
		// Session-wide events (renewals) concern no one candidate and
		// carry no state.
		enc.String(KeyState, ev.State.String())
	}
	if ev.TokenPrefix != "" {
		// The core sends a prefix already; cutting again keeps a whole
		// token out of the log even if an event was built by hand.
		enc.String(KeyTokenPrefix, election.TokenPrefix(ev.TokenPrefix))
	}
	if ev.Fence != 0 {
		enc.Uint64(KeyFence, ev.Fence)
	}
	if ev.Latency != 0 {
		enc.Duration(KeyLatency, ev.Latency)
	}
	if ev.Reason != "" {
		enc.String(KeyReason, string(ev.Reason))
	}
	switch ev.Kind {
	case election.EventClaimTaken, election.EventLeaderChanged:
		if ev.Leader != nil {
			// Only the ID and fence: metadata is user data of unknown
			// sensitivity.
			enc.String(KeyLeader, ev.Leader.ID)
			enc.Uint64(KeyLeaderFence, ev.Leader.Fence)
		} else {
			enc.Bool(KeyVacant, true)
		}
	}
	if ev.Queued {
		enc.Bool(KeyQueued, true)
	}
	if ev.TTL != 0 {
		enc.Duration(KeyTTL, ev.TTL)
	}
	if ev.Kind == election.EventRenewed || ev.Kind == election.EventRenewFailed {
		enc.Int(KeyCount, ev.Count)
	}
	if ev.Overrun != 0 {
		enc.Duration(KeyOverrun, ev.Overrun)
	}
	if ev.Err != nil {
		enc.Error(ev.Err)
	}
}
