// Package slogevents logs the events of an [election.Elector] with
// log/slog, as package zaplog does with zap: the same levels, messages and
// field keys, one record per event. It depends on nothing beyond the
// standard library and package election.
//
// Levels: Error for a leadership lost without a release and for handlers
// still running past their term's deadline (EventHandlerOverrun: from then
// on the store may elect another leader and only fencing protects their
// writes; the message names the candidate, the election, the fence and
// the overrun); Warn for failures the core retries, an uncertain term and
// handlers that returned late; Info for starts, stops, claims, recoveries,
// step-downs, releases and leader changes; Debug for renewals, claims that
// found the election held and handlers that returned in time.
//
// Keys: election, candidate, operation (the event kind), state (the
// candidate's state after the event; absent on session-wide events),
// token_prefix, fence, latency, reason, leader, leader_fence, vacant, ttl,
// claims, queued, overrun and error. Durations are [slog.Duration] values
// and the error a [slog.Any] of the error, so the handler renders them.
//
// It never logs an owner token, leader metadata or a credential: tokens
// appear only as the short prefix the core computes
// ([election.TokenPrefix]).
package slogevents

import (
	"context"
	"log/slog"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/eventlog"
)

// Handler returns an [election.Config.OnEvent] hook that writes every
// event to l as one record (see the package comment for levels and keys).
// It is safe for concurrent use and blocks no longer than l's handler;
// attributes are only built for events at an enabled level. A nil l yields
// a hook that does nothing.
func Handler(l *slog.Logger) func(election.Event) {
	if l == nil {
		return func(election.Event) {}
	}
	return func(ev election.Event) {
		ctx := context.Background()
		lvl, msg := eventlog.Classify(ev)
		level := slogLevel(lvl)
		if !l.Enabled(ctx, level) {
			return
		}
		enc := encoder{attrs: make([]slog.Attr, 0, 12)}
		eventlog.Encode(ev, &enc)
		l.LogAttrs(ctx, level, msg, enc.attrs...)
	}
}

func slogLevel(l eventlog.Level) slog.Level {
	switch l {
	case eventlog.Debug:
		return slog.LevelDebug
	case eventlog.Warn:
		return slog.LevelWarn
	case eventlog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// encoder collects an event's fields as slog attributes.
type encoder struct{ attrs []slog.Attr }

func (e *encoder) String(k, v string)        { e.attrs = append(e.attrs, slog.String(k, v)) }
func (e *encoder) Uint64(k string, v uint64) { e.attrs = append(e.attrs, slog.Uint64(k, v)) }
func (e *encoder) Int(k string, v int)       { e.attrs = append(e.attrs, slog.Int(k, v)) }
func (e *encoder) Duration(k string, v time.Duration) {
	e.attrs = append(e.attrs, slog.Duration(k, v))
}
func (e *encoder) Bool(k string, v bool) { e.attrs = append(e.attrs, slog.Bool(k, v)) }
func (e *encoder) Error(err error)       { e.attrs = append(e.attrs, slog.Any(eventlog.KeyError, err)) }
