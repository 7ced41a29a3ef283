package slogevents_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/eventtour"
	"github.com/electionkit/election/slogevents"
	"github.com/electionkit/election/zaplog"
)

// Every kind of event, and the variants that change a line's level.
func sampleEvents() []election.Event {
	storeErr := fmt.Errorf("memory: renew: %w", election.ErrUnavailable)
	leader := &election.Leader{Election: "reaper", ID: "pod-1", Fence: 7, Metadata: map[string]string{"secret": "s3cr3t"}}
	base := func(k election.EventKind, s election.State) election.Event {
		return election.Event{Kind: k, State: s, Election: "reaper", Candidate: "pod-1", TokenPrefix: "0123abcd", Fence: 7}
	}
	with := func(ev election.Event, f func(*election.Event)) election.Event { f(&ev); return ev }
	return []election.Event{
		base(election.EventStarted, election.StateClaiming),
		with(base(election.EventClaimed, election.StateLeading), func(ev *election.Event) { ev.Latency, ev.TTL = 3*time.Millisecond, time.Second }),
		{Kind: election.EventClaimTaken, State: election.StateQueued, Election: "reaper", Candidate: "pod-2", Leader: leader, Queued: true, Latency: time.Millisecond},
		{Kind: election.EventClaimFailed, State: election.StateCampaigning, Election: "reaper", Candidate: "pod-2", Err: storeErr},
		{Kind: election.EventRenewed, Count: 2, Latency: time.Millisecond, TTL: time.Second},
		{Kind: election.EventRenewed, Count: 1, Err: &election.NotOwnerError{Claims: []election.Claim{{Name: "reaper", Token: "whole-token-never-logged"}}}},
		{Kind: election.EventRenewFailed, Count: 2, Err: storeErr},
		with(base(election.EventUncertain, election.StateUncertain), func(ev *election.Event) { ev.Err = storeErr }),
		base(election.EventRecovered, election.StateLeading),
		with(base(election.EventLost, election.StateSteppingDown), func(ev *election.Event) { ev.Reason, ev.Err = election.LossDeadline, election.ErrLost }),
		base(election.EventSteppingDown, election.StateSteppingDown),
		with(base(election.EventHandlerOverrun, election.StateSteppingDown), func(ev *election.Event) { ev.Overrun = 1200 * time.Millisecond }),
		with(base(election.EventHandlersReturned, election.StateReleasing), func(ev *election.Event) { ev.Overrun = 1500 * time.Millisecond }),
		base(election.EventHandlersReturned, election.StateReleasing),
		base(election.EventReleased, election.StateStopped),
		with(base(election.EventReleased, election.StateCampaigning), func(ev *election.Event) { ev.Err = storeErr }),
		{Kind: election.EventWatchFailed, State: election.StateLeading, Election: "reaper", Candidate: "pod-1", Err: storeErr},
		{Kind: election.EventLeaderChanged, State: election.StateQueued, Election: "reaper", Candidate: "pod-2", Leader: leader},
		{Kind: election.EventLeaderChanged, State: election.StateCampaigning, Election: "reaper", Candidate: "pod-2"},
		{Kind: election.EventStopped, State: election.StateStopped, Election: "reaper", Candidate: "pod-2"},
		{Kind: election.EventClaimed, Election: "reaper", TokenPrefix: "0123456789abcdef0123456789abcdef"},
		{Kind: election.EventKind(99), Election: "reaper"},
	}
}

// The two adapters log the same line for every event: level, message,
// and fields with equal values.
func TestSameLinesAsZaplog(t *testing.T) {
	levels := map[zapcore.Level]slog.Level{
		zapcore.DebugLevel: slog.LevelDebug, zapcore.InfoLevel: slog.LevelInfo,
		zapcore.WarnLevel: slog.LevelWarn, zapcore.ErrorLevel: slog.LevelError,
	}
	for _, ev := range sampleEvents() {
		core, logs := observer.New(zapcore.DebugLevel)
		zaplog.OnEvent(zap.New(core))(ev)
		rec := recorder{min: slog.LevelDebug}
		slogevents.Handler(slog.New(&rec))(ev)
		if logs.Len() != 1 || len(rec.records) != 1 {
			t.Fatalf("%v: %d zap entries, %d slog records, want 1 each", ev.Kind, logs.Len(), len(rec.records))
		}
		z, s := logs.All()[0], rec.records[0]
		if levels[z.Level] != s.Level || z.Message != s.Message {
			t.Errorf("%v: slog %v %q, zap %v %q", ev.Kind, s.Level, s.Message, z.Level, z.Message)
		}
		zf := z.ContextMap()
		if err, ok := zf["error"]; ok {
			zf["error"] = fmt.Sprint(err)
		}
		sf := map[string]any{}
		s.Attrs(func(a slog.Attr) bool {
			v := a.Value.Any()
			if err, ok := v.(error); ok {
				v = err.Error()
			}
			sf[a.Key] = v
			return true
		})
		if fmt.Sprint(zf) != fmt.Sprint(sf) {
			t.Errorf("%v: slog fields %v, zap fields %v", ev.Kind, sf, zf)
		}
		if strings.Contains(fmt.Sprint(sf), "whole-token-never-logged") || strings.Contains(fmt.Sprint(sf), "s3cr3t") {
			t.Errorf("%v: token or metadata logged: %v", ev.Kind, sf)
		}
	}
}

func TestDisabledLevelsBuildNothing(t *testing.T) {
	rec := recorder{min: slog.LevelInfo}
	hook := slogevents.Handler(slog.New(&rec))
	hook(election.Event{Kind: election.EventRenewed, Count: 1})
	hook(election.Event{Kind: election.EventHandlersReturned, Election: "x", Candidate: "c"})
	if len(rec.records) != 0 {
		t.Fatalf("Info logger recorded %d Debug events", len(rec.records))
	}
	hook(election.Event{Kind: election.EventHandlersReturned, Election: "x", Candidate: "c", Overrun: time.Second})
	if len(rec.records) != 1 || rec.records[0].Level != slog.LevelWarn {
		t.Fatalf("Info logger recorded %v for late handlers, want one Warn record", rec.records)
	}
}

func TestNilLogger(t *testing.T) {
	slogevents.Handler(nil)(election.Event{Kind: election.EventLost, Err: election.ErrLost}) // must not panic
}

// TestTourRecords renders the real events of a term in trouble (see
// package eventtour) with slog.NewJSONHandler, checks the records of the
// overrun and the late return, and that no owner token appears.
func TestTourRecords(t *testing.T) {
	var out syncBuffer
	tour := eventtour.Run(t, slogevents.Handler(slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if t.Failed() {
		return
	}
	overrunEv, _ := tour.Find(election.EventHandlerOverrun, eventtour.Stubborn)
	text := out.String()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	find := func(op, candidate string) map[string]any {
		t.Helper()
		var found []map[string]any
		for _, m := range lines {
			if m["operation"] == op && m["candidate"] == candidate {
				found = append(found, m)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d %s records for %s, want 1", len(found), op, candidate)
		}
		return found[0]
	}
	// JSON numbers decode as float64; durations are nanoseconds.
	want := func(m map[string]any, fields map[string]any) {
		t.Helper()
		for k, v := range fields {
			if m[k] != v {
				t.Errorf("%s of %s: %s = %#v, want %#v", m["operation"], m["candidate"], k, m[k], v)
			}
		}
	}
	want(find("handler-overrun", eventtour.Stubborn), map[string]any{
		"level": "ERROR",
		"msg": fmt.Sprintf(`election: handlers of candidate "stubborn" in election "jobs" (fence %d) still run 15ms past the term's deadline; `+
			"the store may elect another leader: only fencing protects writes now", overrunEv.Fence),
		"election": eventtour.Election, "fence": float64(overrunEv.Fence), "overrun": float64(eventtour.Overrun),
		"state": "stepping-down", "token_prefix": overrunEv.TokenPrefix,
	})
	want(find("handlers-returned", eventtour.Stubborn), map[string]any{
		"level": "WARN", "msg": "election: handlers returned 115ms past the term's deadline",
		"overrun": float64(eventtour.Late), "state": "releasing",
	})
	want(find("handlers-returned", eventtour.Heir), map[string]any{"level": "DEBUG", "overrun": nil})
	want(find("uncertain", eventtour.Stubborn), map[string]any{"level": "WARN", "state": "uncertain"})
	if find("uncertain", eventtour.Stubborn)["error"] == nil {
		t.Error("uncertain record without its error")
	}
	want(find("recovered", eventtour.Stubborn), map[string]any{"level": "INFO", "state": "leading"})
	want(find("stepping-down", eventtour.Stubborn), map[string]any{"level": "INFO", "state": "stepping-down"})
	want(find("started", eventtour.Heir), map[string]any{"level": "INFO", "state": "claiming"})
	want(find("stopped", eventtour.Idle), map[string]any{"level": "INFO", "state": "stopped"})

	if len(tour.Tokens) < 2 {
		t.Fatalf("the store saw %d tokens, want at least 2", len(tour.Tokens))
	}
	for _, tok := range tour.Tokens {
		if strings.Contains(text, tok) {
			t.Errorf("whole owner token %q appears in the log", tok)
		}
	}
}

// recorder is a slog.Handler that keeps the records it is given.
type recorder struct {
	min     slog.Level
	records []slog.Record
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.min }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.records = append(r.records, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { panic(errors.New("not used")) }
func (r *recorder) WithGroup(string) slog.Handler      { panic(errors.New("not used")) }

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
