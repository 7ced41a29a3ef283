package zaplog_test

import (
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/eventtour"
	"github.com/electionkit/election/zaplog"
)

// TestTourLines logs the real events of a term in trouble (see package
// eventtour): renewals failing and recovering, a Stop while a handler
// ignores its context, the handler overrunning the term's deadline and
// returning late, a prompt step-down, and a stop that holds nothing. It
// checks the line of each, and that no owner token is ever logged.
func TestTourLines(t *testing.T) {
	obsCore, logs := observer.New(zapcore.DebugLevel)
	var encoded syncBuffer
	jsonCore := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&encoded), zapcore.DebugLevel)
	tour := eventtour.Run(t, zaplog.OnEvent(zap.New(zapcore.NewTee(obsCore, jsonCore))))
	if t.Failed() {
		return
	}
	overrunEv, _ := tour.Find(election.EventHandlerOverrun, eventtour.Stubborn)

	e := only(t, logs, "handler-overrun", eventtour.Stubborn)
	wantMsg := fmt.Sprintf(`election: handlers of candidate "stubborn" in election "jobs" (fence %d) still run 15ms past the term's deadline; `+
		"the store may elect another leader: only fencing protects writes now", overrunEv.Fence)
	if e.Level != zapcore.ErrorLevel || e.Message != wantMsg {
		t.Errorf("overrun line: %v %q, want Error %q", e.Level, e.Message, wantMsg)
	}
	wantFields(t, e, map[string]any{
		zaplog.KeyElection: eventtour.Election, zaplog.KeyFence: overrunEv.Fence, zaplog.KeyOverrun: eventtour.Overrun,
		zaplog.KeyState: "stepping-down", zaplog.KeyTokenPrefix: overrunEv.TokenPrefix,
	})

	e = only(t, logs, "handlers-returned", eventtour.Stubborn)
	if e.Level != zapcore.WarnLevel || e.Message != "election: handlers returned 115ms past the term's deadline" {
		t.Errorf("late return line: %v %q", e.Level, e.Message)
	}
	wantFields(t, e, map[string]any{zaplog.KeyOverrun: eventtour.Late, zaplog.KeyState: "releasing", zaplog.KeyFence: overrunEv.Fence})

	e = only(t, logs, "handlers-returned", eventtour.Heir)
	if e.Level != zapcore.DebugLevel {
		t.Errorf("prompt return logged at %v, want Debug", e.Level)
	}
	if _, ok := e.ContextMap()[zaplog.KeyOverrun]; ok {
		t.Errorf("prompt return has an overrun: %v", e.ContextMap())
	}

	for _, c := range []struct {
		op, candidate, state string
		level                zapcore.Level
		err                  bool
	}{
		{"started", eventtour.Stubborn, "claiming", zapcore.InfoLevel, false},
		{"uncertain", eventtour.Stubborn, "uncertain", zapcore.WarnLevel, true},
		{"recovered", eventtour.Stubborn, "leading", zapcore.InfoLevel, false},
		{"stepping-down", eventtour.Stubborn, "stepping-down", zapcore.InfoLevel, false},
		{"lost", eventtour.Stubborn, "stepping-down", zapcore.ErrorLevel, true},
		{"released", eventtour.Stubborn, "stopped", zapcore.WarnLevel, true},
		{"claim-taken", eventtour.Heir, "queued", zapcore.DebugLevel, false},
		{"stepping-down", eventtour.Heir, "stepping-down", zapcore.InfoLevel, false},
		{"released", eventtour.Heir, "stopped", zapcore.InfoLevel, false},
		{"stopped", eventtour.Idle, "stopped", zapcore.InfoLevel, false},
	} {
		e := only(t, logs, c.op, c.candidate)
		m := e.ContextMap()
		_, hasErr := m["error"]
		if e.Level != c.level || m[zaplog.KeyState] != c.state || hasErr != c.err {
			t.Errorf("%s of %s: %v state=%v error=%v, want %v state=%s error=%v", c.op, c.candidate, e.Level, m[zaplog.KeyState], hasErr, c.level, c.state, c.err)
		}
	}

	// Every candidate line says the state; session-wide lines do not.
	for _, e := range logs.All() {
		m := e.ContextMap()
		_, hasState := m[zaplog.KeyState]
		if _, hasCandidate := m[zaplog.KeyCandidate]; hasState != hasCandidate {
			t.Errorf("%q: state field %v, candidate field %v", e.Message, hasState, hasCandidate)
		}
	}

	if len(tour.Tokens) < 2 {
		t.Fatalf("the store saw %d tokens, want at least 2", len(tour.Tokens))
	}
	text := encoded.String()
	for _, e := range logs.All() {
		text += e.Message + fmt.Sprint(e.ContextMap())
	}
	for _, tok := range tour.Tokens {
		if strings.Contains(text, tok) {
			t.Errorf("whole owner token %q appears in the log", tok)
		}
	}
}

// only returns the one entry of operation op for candidate, failing t if
// there is not exactly one.
func only(t *testing.T, logs *observer.ObservedLogs, op, candidate string) observer.LoggedEntry {
	t.Helper()
	es := logs.FilterField(zap.String(zaplog.KeyOperation, op)).FilterField(zap.String(zaplog.KeyCandidate, candidate)).All()
	if len(es) != 1 {
		t.Fatalf("%d %s entries for %s, want 1", len(es), op, candidate)
	}
	return es[0]
}

func wantFields(t *testing.T, e observer.LoggedEntry, want map[string]any) {
	t.Helper()
	got := e.ContextMap()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q: field %s = %#v, want %#v", e.Message, k, got[k], v)
		}
	}
}
