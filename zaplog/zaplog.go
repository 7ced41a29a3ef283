// Package zaplog logs the events of an [election.Elector] with zap.
//
// [OnEvent] returns a hook for [election.Config.OnEvent]: one structured
// line per event, at a level that matches what an operator must do about
// it. It logs the fields the lease checklist asks for (election, candidate,
// the candidate's state after the event, token prefix, operation, latency,
// fence, loss reason, handler overrun, error) and never an owner token,
// leader metadata or a credential: tokens appear only as the short prefix
// the core already computes ([election.TokenPrefix]). Package slogevents
// logs the same lines through log/slog.
//
// Levels:
//
//   - Error: leadership lost without a release (EventLost); handlers of an
//     ended term still running past its deadline (EventHandlerOverrun), when
//     the store may elect another leader and only fencing protects their
//     writes. Its message names the candidate, the election, the fence and
//     the overrun.
//   - Warn: store failures that the core retries (claim, renew and watch
//     failures, a renewal the store answered with some claims no longer
//     held, a release that failed); a leader whose renewals fail
//     (EventUncertain); handlers that returned late (EventHandlersReturned
//     with field "overrun").
//   - Info: a campaign started or a candidate stopped, leadership claimed,
//     recovered from uncertainty, stepped down from or released, a new
//     leader seen.
//   - Debug: routine traffic (a session renewed, a claim that found the
//     election held, or joined its line: field "queued"; handlers that
//     returned before their term's deadline).
//
// Every event of a candidate carries field "state": the candidate's
// [election.State] after the event (session-wide renewal events have none).
package zaplog

import (
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/eventlog"
)

// Field keys used by [OnEvent], stable so that log queries can rely on them.
// Fields an event does not carry are left out.
const (
	// KeyElection is the election name.
	KeyElection = eventlog.KeyElection
	// KeyCandidate is the candidate's ID.
	KeyCandidate = eventlog.KeyCandidate
	// KeyOperation is the event kind ([election.EventKind.String]).
	KeyOperation = eventlog.KeyOperation
	// KeyState is the candidate's state after the event
	// ([election.State.String]); absent on session-wide events.
	KeyState = eventlog.KeyState
	// KeyTokenPrefix is the first characters of the owner token, never
	// the whole token.
	KeyTokenPrefix = eventlog.KeyTokenPrefix
	// KeyFence is the fencing token of the term concerned.
	KeyFence = eventlog.KeyFence
	// KeyLatency is how long the store operation took.
	KeyLatency = eventlog.KeyLatency
	// KeyReason is why leadership was lost ([election.LossReason]).
	KeyReason = eventlog.KeyReason
	// KeyLeader is the ID of the holder a candidate saw.
	KeyLeader = eventlog.KeyLeader
	// KeyLeaderFence is the fence of the holder a candidate saw.
	KeyLeaderFence = eventlog.KeyLeaderFence
	// KeyVacant is true when a candidate saw no holder.
	KeyVacant = eventlog.KeyVacant
	// KeyTTL is the TTL the store granted.
	KeyTTL = eventlog.KeyTTL
	// KeyCount is the number of claims a renewal covered.
	KeyCount = eventlog.KeyCount
	// KeyQueued is true when a claim waits in, or was elected from, the
	// store's line.
	KeyQueued = eventlog.KeyQueued
	// KeyOverrun is how far past their term's deadline handlers ran
	// (EventHandlerOverrun, and EventHandlersReturned when late).
	KeyOverrun = eventlog.KeyOverrun
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
		lvl, msg := eventlog.Classify(ev)
		if ce := l.Check(zapLevel(lvl), msg); ce != nil {
			enc := encoder{fs: make([]zap.Field, 0, 12)}
			eventlog.Encode(ev, &enc)
			ce.Write(enc.fs...)
		}
	}
}

func zapLevel(l eventlog.Level) zapcore.Level {
	switch l {
	case eventlog.Debug:
		return zapcore.DebugLevel
	case eventlog.Warn:
		return zapcore.WarnLevel
	case eventlog.Error:
		return zapcore.ErrorLevel
	default:
		return zapcore.InfoLevel
	}
}

// encoder collects an event's fields as zap fields.
type encoder struct{ fs []zap.Field }

func (e *encoder) String(k, v string)                 { e.fs = append(e.fs, zap.String(k, v)) }
func (e *encoder) Uint64(k string, v uint64)          { e.fs = append(e.fs, zap.Uint64(k, v)) }
func (e *encoder) Int(k string, v int)                { e.fs = append(e.fs, zap.Int(k, v)) }
func (e *encoder) Duration(k string, v time.Duration) { e.fs = append(e.fs, zap.Duration(k, v)) }
func (e *encoder) Bool(k string, v bool)              { e.fs = append(e.fs, zap.Bool(k, v)) }
func (e *encoder) Error(err error)                    { e.fs = append(e.fs, zap.Error(err)) }
