// Package zaplog logs the events of an [election.Elector] with zap.
//
// [OnEvent] returns a hook for [election.Config.OnEvent]: one structured
// line per event, at a level that matches what an operator must do about
// it. It logs the fields the lease checklist asks for (election, candidate,
// token prefix, operation, latency, fence, loss reason, error) and never an
// owner token, leader metadata or a credential: tokens appear only as the
// short prefix the core already computes ([election.TokenPrefix]).
//
// Levels:
//
//   - Error: leadership lost without a release (EventLost).
//   - Warn: store failures that the core retries (claim, renew and watch
//     failures, a renewal the store answered with some claims no longer
//     held, a release that failed).
//   - Info: leadership claimed or released, a new leader seen.
//   - Debug: routine traffic (a session renewed, a claim that found the
//     election held, or joined its line: field "queued").
package zaplog

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/electionkit/election"
)

// Field keys used by [OnEvent], stable so that log queries can rely on them.
const (
	KeyElection    = "election"
	KeyCandidate   = "candidate"
	KeyOperation   = "operation"
	KeyTokenPrefix = "token_prefix"
	KeyFence       = "fence"
	KeyLatency     = "latency"
	KeyReason      = "reason"
	KeyLeader      = "leader"
	KeyLeaderFence = "leader_fence"
	KeyVacant      = "vacant"
	KeyTTL         = "ttl"
	KeyCount       = "claims"
	KeyQueued      = "queued"
	// The error itself is logged under zap's usual "error" key.
)

// OnEvent returns an [election.Config.OnEvent] hook that writes every event
// to l (see the package comment for levels and fields). The hook is safe
// for concurrent use and does not block beyond what l's core does; fields
// are only built for events at an enabled level, so Debug-level renewals
// cost almost nothing in production. A nil l yields a hook that does
// nothing.
func OnEvent(l *zap.Logger) func(election.Event) {
	if l == nil {
		return func(election.Event) {}
	}
	return func(ev election.Event) {
		lvl, msg := classify(ev)
		if ce := l.Check(lvl, msg); ce != nil {
			ce.Write(fields(ev)...)
		}
	}
}

// classify chooses the level and message of ev. Failures the core retries
// are warnings; a loss of leadership is an error because the work it
// guarded stopped without a handover.
func classify(ev election.Event) (zapcore.Level, string) {
	switch ev.Kind {
	case election.EventClaimed:
		return zapcore.InfoLevel, "election: leadership claimed"
	case election.EventClaimTaken:
		return zapcore.DebugLevel, "election: claim found the election held"
	case election.EventClaimFailed:
		return zapcore.WarnLevel, "election: claim failed, retrying"
	case election.EventRenewed:
		if ev.Err != nil {
			// The store answered, but no longer holds some claims:
			// the matching EventLost follows.
			return zapcore.WarnLevel, "election: session renewed, some claims not held"
		}
		return zapcore.DebugLevel, "election: session renewed"
	case election.EventRenewFailed:
		return zapcore.WarnLevel, "election: session renewal failed"
	case election.EventLost:
		return zapcore.ErrorLevel, "election: leadership lost"
	case election.EventReleased:
		if ev.Err != nil {
			return zapcore.WarnLevel, "election: leadership released, store release failed"
		}
		return zapcore.InfoLevel, "election: leadership released"
	case election.EventWatchFailed:
		return zapcore.WarnLevel, "election: watch failed, re-establishing"
	case election.EventLeaderChanged:
		return zapcore.InfoLevel, "election: leader changed"
	default:
		return zapcore.InfoLevel, "election: event"
	}
}

// fields returns the structured fields of ev, omitting those the event
// does not carry.
func fields(ev election.Event) []zap.Field {
	fs := make([]zap.Field, 0, 10)
	if ev.Election != "" {
		fs = append(fs, zap.String(KeyElection, ev.Election))
	}
	if ev.Candidate != "" {
		fs = append(fs, zap.String(KeyCandidate, ev.Candidate))
	}
	fs = append(fs, zap.String(KeyOperation, ev.Kind.String()))
	if ev.TokenPrefix != "" {
		// The core sends a prefix already; cutting again keeps a whole
		// token out of the log even if an event was built by hand.
		fs = append(fs, zap.String(KeyTokenPrefix, election.TokenPrefix(ev.TokenPrefix)))
	}
	if ev.Fence != 0 {
		fs = append(fs, zap.Uint64(KeyFence, ev.Fence))
	}
	if ev.Latency != 0 {
		fs = append(fs, zap.Duration(KeyLatency, ev.Latency))
	}
	if ev.Reason != "" {
		fs = append(fs, zap.String(KeyReason, string(ev.Reason)))
	}
	switch ev.Kind {
	case election.EventClaimTaken, election.EventLeaderChanged:
		if ev.Leader != nil {
			// Only the ID and fence: metadata is user data of unknown
			// sensitivity.
			fs = append(fs, zap.String(KeyLeader, ev.Leader.ID), zap.Uint64(KeyLeaderFence, ev.Leader.Fence))
		} else {
			fs = append(fs, zap.Bool(KeyVacant, true))
		}
	}
	if ev.Queued {
		fs = append(fs, zap.Bool(KeyQueued, true))
	}
	if ev.TTL != 0 {
		fs = append(fs, zap.Duration(KeyTTL, ev.TTL))
	}
	if ev.Kind == election.EventRenewed || ev.Kind == election.EventRenewFailed {
		fs = append(fs, zap.Int(KeyCount, ev.Count))
	}
	if ev.Err != nil {
		fs = append(fs, zap.Error(ev.Err))
	}
	return fs
}
