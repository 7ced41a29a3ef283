package zaplog_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
	"github.com/electionkit/election/internal/eventrec"
	"github.com/electionkit/election/zaplog"
)

func TestLevelsAndFields(t *testing.T) {
	storeErr := fmt.Errorf("memory: renew: %w", election.ErrUnavailable)
	cases := []struct {
		name  string
		ev    election.Event
		level zapcore.Level
		// message, if set, is the whole message
		message string
		want    map[string]any // fields that must be present with these values
		omit    []string       // fields that must be absent
	}{
		{
			name:  "claimed",
			ev:    election.Event{Kind: election.EventClaimed, Election: "reaper", Candidate: "pod-1", TokenPrefix: "0123abcd", Fence: 7, Latency: 3 * time.Millisecond, TTL: 10 * time.Second},
			level: zapcore.InfoLevel,
			want: map[string]any{
				zaplog.KeyElection: "reaper", zaplog.KeyCandidate: "pod-1", zaplog.KeyOperation: "claimed",
				zaplog.KeyTokenPrefix: "0123abcd", zaplog.KeyFence: uint64(7), zaplog.KeyLatency: 3 * time.Millisecond,
				zaplog.KeyTTL: 10 * time.Second,
			},
			omit: []string{"error", zaplog.KeyReason, zaplog.KeyLeader, zaplog.KeyCount, zaplog.KeyQueued},
		},
		{
			name:  "claimed from the line",
			ev:    election.Event{Kind: election.EventClaimed, Election: "reaper", Candidate: "pod-2", TokenPrefix: "4567cdef", Fence: 9, Queued: true, TTL: 10 * time.Second},
			level: zapcore.InfoLevel,
			want:  map[string]any{zaplog.KeyOperation: "claimed", zaplog.KeyFence: uint64(9), zaplog.KeyQueued: true},
			omit:  []string{zaplog.KeyLatency},
		},
		{
			name:  "queued",
			ev:    election.Event{Kind: election.EventClaimTaken, Election: "reaper", Candidate: "pod-2", Latency: time.Millisecond, Queued: true, Leader: &election.Leader{Election: "reaper", ID: "pod-1", Fence: 7}},
			level: zapcore.DebugLevel,
			want:  map[string]any{zaplog.KeyOperation: "claim-taken", zaplog.KeyLeader: "pod-1", zaplog.KeyQueued: true},
		},
		{
			name:  "taken",
			ev:    election.Event{Kind: election.EventClaimTaken, Election: "reaper", Candidate: "pod-2", Latency: time.Millisecond, Leader: &election.Leader{Election: "reaper", ID: "pod-1", Fence: 7, Metadata: map[string]string{"secret": "s3cr3t"}}},
			level: zapcore.DebugLevel,
			want:  map[string]any{zaplog.KeyOperation: "claim-taken", zaplog.KeyLeader: "pod-1", zaplog.KeyLeaderFence: uint64(7)},
			omit:  []string{zaplog.KeyFence, zaplog.KeyTokenPrefix, zaplog.KeyVacant},
		},
		{
			name:  "claim failed",
			ev:    election.Event{Kind: election.EventClaimFailed, Election: "reaper", Candidate: "pod-2", Err: storeErr},
			level: zapcore.WarnLevel,
			want:  map[string]any{zaplog.KeyOperation: "claim-failed", "error": storeErr.Error()},
		},
		{
			name:  "renewed",
			ev:    election.Event{Kind: election.EventRenewed, Latency: 2 * time.Millisecond, Count: 3, TTL: time.Second},
			level: zapcore.DebugLevel,
			want:  map[string]any{zaplog.KeyOperation: "renewed", zaplog.KeyCount: int64(3), zaplog.KeyLatency: 2 * time.Millisecond},
			omit:  []string{zaplog.KeyElection, zaplog.KeyCandidate, zaplog.KeyState, "error"},
		},
		{
			name:  "renewed with claims not held",
			ev:    election.Event{Kind: election.EventRenewed, Count: 1, Err: &election.NotOwnerError{Claims: []election.Claim{{Name: "reaper", Token: "whole-token-never-logged"}}}},
			level: zapcore.WarnLevel,
			want:  map[string]any{zaplog.KeyOperation: "renewed", "error": `election: not owner of "reaper"`},
		},
		{
			name:  "renew failed",
			ev:    election.Event{Kind: election.EventRenewFailed, Latency: time.Second, Count: 2, Err: storeErr},
			level: zapcore.WarnLevel,
			want:  map[string]any{zaplog.KeyOperation: "renew-failed", zaplog.KeyCount: int64(2), "error": storeErr.Error()},
		},
		{
			name:  "lost",
			ev:    election.Event{Kind: election.EventLost, Election: "reaper", Candidate: "pod-1", TokenPrefix: "0123abcd", Fence: 7, Reason: election.LossDeadline, Err: election.ErrLost},
			level: zapcore.ErrorLevel,
			want:  map[string]any{zaplog.KeyOperation: "lost", zaplog.KeyReason: "deadline", zaplog.KeyFence: uint64(7), "error": election.ErrLost.Error()},
		},
		{
			name:  "released",
			ev:    election.Event{Kind: election.EventReleased, Election: "reaper", Candidate: "pod-1", TokenPrefix: "0123abcd", Fence: 7},
			level: zapcore.InfoLevel,
			want:  map[string]any{zaplog.KeyOperation: "released", zaplog.KeyFence: uint64(7)},
			omit:  []string{"error"},
		},
		{
			name:  "release failed",
			ev:    election.Event{Kind: election.EventReleased, Election: "reaper", Candidate: "pod-1", Fence: 7, Err: storeErr},
			level: zapcore.WarnLevel,
			want:  map[string]any{zaplog.KeyOperation: "released", "error": storeErr.Error()},
		},
		{
			name:  "watch failed",
			ev:    election.Event{Kind: election.EventWatchFailed, Election: "reaper", Candidate: "pod-2", Err: storeErr},
			level: zapcore.WarnLevel,
			want:  map[string]any{zaplog.KeyOperation: "watch-failed"},
		},
		{
			name:  "vacancy",
			ev:    election.Event{Kind: election.EventLeaderChanged, Election: "reaper", Candidate: "pod-2"},
			level: zapcore.InfoLevel,
			want:  map[string]any{zaplog.KeyOperation: "leader-changed", zaplog.KeyVacant: true},
			omit:  []string{zaplog.KeyLeader},
		},
		{
			name:  "started",
			ev:    election.Event{Kind: election.EventStarted, State: election.StateClaiming, Election: "reaper", Candidate: "pod-1"},
			level: zapcore.InfoLevel,
			want:  map[string]any{zaplog.KeyOperation: "started", zaplog.KeyState: "claiming", zaplog.KeyCandidate: "pod-1"},
			omit:  []string{zaplog.KeyFence, zaplog.KeyOverrun, "error"},
		},
		{
			name:  "uncertain",
			ev:    election.Event{Kind: election.EventUncertain, State: election.StateUncertain, Election: "reaper", Candidate: "pod-1", TokenPrefix: "0123abcd", Fence: 7, Err: storeErr},
			level: zapcore.WarnLevel,
			want:  map[string]any{zaplog.KeyOperation: "uncertain", zaplog.KeyState: "uncertain", zaplog.KeyFence: uint64(7), "error": storeErr.Error()},
		},
		{
			name:  "recovered",
			ev:    election.Event{Kind: election.EventRecovered, State: election.StateLeading, Election: "reaper", Candidate: "pod-1", Fence: 7},
			level: zapcore.InfoLevel,
			want:  map[string]any{zaplog.KeyOperation: "recovered", zaplog.KeyState: "leading", zaplog.KeyFence: uint64(7)},
			omit:  []string{"error"},
		},
		{
			name:  "stepping down",
			ev:    election.Event{Kind: election.EventSteppingDown, State: election.StateSteppingDown, Election: "reaper", Candidate: "pod-1", Fence: 7},
			level: zapcore.InfoLevel,
			want:  map[string]any{zaplog.KeyOperation: "stepping-down", zaplog.KeyState: "stepping-down", zaplog.KeyFence: uint64(7)},
		},
		{
			name:    "handler overrun",
			ev:      election.Event{Kind: election.EventHandlerOverrun, State: election.StateSteppingDown, Election: "reaper", Candidate: "pod-1", Fence: 7, Overrun: 1200 * time.Millisecond},
			level:   zapcore.ErrorLevel,
			message: `election: handlers of candidate "pod-1" in election "reaper" (fence 7) still run 1.2s past the term's deadline; the store may elect another leader: only fencing protects writes now`,
			want:    map[string]any{zaplog.KeyOperation: "handler-overrun", zaplog.KeyState: "stepping-down", zaplog.KeyFence: uint64(7), zaplog.KeyOverrun: 1200 * time.Millisecond},
		},
		{
			name:    "handlers returned late",
			ev:      election.Event{Kind: election.EventHandlersReturned, State: election.StateReleasing, Election: "reaper", Candidate: "pod-1", Fence: 7, Overrun: 1500 * time.Millisecond},
			level:   zapcore.WarnLevel,
			message: "election: handlers returned 1.5s past the term's deadline",
			want:    map[string]any{zaplog.KeyOperation: "handlers-returned", zaplog.KeyState: "releasing", zaplog.KeyOverrun: 1500 * time.Millisecond},
		},
		{
			name:  "handlers returned in time",
			ev:    election.Event{Kind: election.EventHandlersReturned, State: election.StateReleasing, Election: "reaper", Candidate: "pod-1", Fence: 7},
			level: zapcore.DebugLevel,
			want:  map[string]any{zaplog.KeyOperation: "handlers-returned", zaplog.KeyState: "releasing"},
			omit:  []string{zaplog.KeyOverrun},
		},
		{
			name:  "stopped",
			ev:    election.Event{Kind: election.EventStopped, State: election.StateStopped, Election: "reaper", Candidate: "pod-2"},
			level: zapcore.InfoLevel,
			want:  map[string]any{zaplog.KeyOperation: "stopped", zaplog.KeyState: "stopped"},
		},
		{
			name:  "hand-built event with a whole token",
			ev:    election.Event{Kind: election.EventClaimed, Election: "reaper", TokenPrefix: "0123456789abcdef0123456789abcdef"},
			level: zapcore.InfoLevel,
			want:  map[string]any{zaplog.KeyTokenPrefix: "01234567"},
		},
		{
			name:  "unknown kind",
			ev:    election.Event{Kind: election.EventKind(99), Election: "reaper"},
			level: zapcore.InfoLevel,
			want:  map[string]any{zaplog.KeyOperation: "EventKind(99)"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			zaplog.OnEvent(zap.New(core))(tc.ev)
			entries := logs.All()
			if len(entries) != 1 {
				t.Fatalf("got %d entries, want 1", len(entries))
			}
			e := entries[0]
			if e.Level != tc.level {
				t.Errorf("level = %v, want %v", e.Level, tc.level)
			}
			if tc.message != "" && e.Message != tc.message {
				t.Errorf("message %q, want %q", e.Message, tc.message)
			}
			if !strings.HasPrefix(e.Message, "election: ") {
				t.Errorf("message %q does not start with %q", e.Message, "election: ")
			}
			got := e.ContextMap()
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("field %s = %#v, want %#v (all: %v)", k, got[k], v, got)
				}
			}
			for _, k := range tc.omit {
				if _, ok := got[k]; ok {
					t.Errorf("field %s present (%v), want absent", k, got[k])
				}
			}
			if s := fmt.Sprint(got); strings.Contains(s, "whole-token-never-logged") || strings.Contains(s, "s3cr3t") {
				t.Errorf("token or metadata logged: %s", s)
			}
		})
	}
}

func TestDisabledLevelsBuildNothing(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	hook := zaplog.OnEvent(zap.New(core))
	hook(election.Event{Kind: election.EventRenewed, Count: 1})
	hook(election.Event{Kind: election.EventClaimTaken, Election: "x"})
	if n := logs.Len(); n != 0 {
		t.Fatalf("Info logger recorded %d Debug events", n)
	}
	hook(election.Event{Kind: election.EventClaimed, Election: "x"})
	if n := logs.Len(); n != 1 {
		t.Fatalf("Info logger recorded %d entries for a claim, want 1", n)
	}
}

func TestNilLogger(t *testing.T) {
	hook := zaplog.OnEvent(nil)
	hook(election.Event{Kind: election.EventLost, Err: election.ErrLost}) // must not panic
}

// TestRealEventsNeverLogTokens drives two electors on one in-process store
// through a claim, contention, a handover and a partition, and checks the
// log (as structured fields and as encoded JSON) against every owner token
// the backend saw.
func TestRealEventsNeverLogTokens(t *testing.T) {
	store := memory.NewStore()
	tokens := &tokenLog{}
	obsCore, logs := observer.New(zapcore.DebugLevel)
	var encoded syncBuffer
	jsonCore := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&encoded), zapcore.DebugLevel)
	logger := zap.New(zapcore.NewTee(obsCore, jsonCore))

	rec := eventrec.New()
	cfg := election.Config{TTL: time.Second, OnEvent: election.TeeEvents(zaplog.OnEvent(logger), rec.Record)}
	clientA, clientB := store.NewClient(), store.NewClient()
	elA := newElector(t, &recordingBackend{Backend: clientA, tokens: tokens}, cfg)
	elB := newElector(t, &recordingBackend{Backend: clientB, tokens: tokens}, cfg)
	a := newCandidate(t, elA, "a")
	b := newCandidate(t, elB, "b")

	ctx := context.Background()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rec.Wait(t, election.EventClaimed, "a")
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rec.Wait(t, election.EventClaimTaken, "b")
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	rec.Wait(t, election.EventReleased, "a")
	rec.Wait(t, election.EventClaimed, "b")
	if err := clientB.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	rec.Wait(t, election.EventLost, "b")
	if err := clientB.Heal(ctx); err != nil {
		t.Fatal(err)
	}

	claimed := logs.FilterField(zap.String(zaplog.KeyOperation, "claimed")).FilterField(zap.String(zaplog.KeyCandidate, "b")).All()
	if len(claimed) == 0 {
		t.Fatal("no claimed entry for b")
	}
	for _, e := range claimed {
		m := e.ContextMap()
		if e.Level != zapcore.InfoLevel || m[zaplog.KeyElection] != "jobs" || m[zaplog.KeyFence] == nil || m[zaplog.KeyLatency] == nil {
			t.Errorf("claimed entry %v %v lacks level Info, election, fence or latency", e.Level, m)
		}
		p, _ := m[zaplog.KeyTokenPrefix].(string)
		if p == "" || len(p) > 8 || !tokens.hasPrefix(p) {
			t.Errorf("token_prefix %q is not a short prefix of a real token", p)
		}
	}
	lost := logs.FilterField(zap.String(zaplog.KeyOperation, "lost")).All()
	if len(lost) == 0 || lost[0].Level != zapcore.ErrorLevel || lost[0].ContextMap()[zaplog.KeyReason] == nil || lost[0].ContextMap()["error"] == nil {
		t.Errorf("lost entries %v: want Error level with reason and error", lost)
	}
	if logs.FilterField(zap.String(zaplog.KeyOperation, "released")).FilterLevelExact(zapcore.InfoLevel).Len() == 0 {
		t.Error("no Info entry for the release")
	}
	if logs.FilterField(zap.String(zaplog.KeyOperation, "renewed")).FilterLevelExact(zapcore.DebugLevel).Len() == 0 {
		t.Error("no Debug entry for a renewal")
	}

	if err := elA.Close(ctx); err != nil {
		t.Error(err)
	}
	if err := elB.Close(ctx); err != nil {
		t.Error(err)
	}
	all := tokens.all()
	if len(all) < 2 {
		t.Fatalf("backend saw %d tokens, want at least 2", len(all))
	}
	text := encoded.String()
	for _, e := range logs.All() {
		text += e.Message + fmt.Sprint(e.ContextMap())
	}
	for _, tok := range all {
		if strings.Contains(text, tok) {
			t.Errorf("whole owner token %q appears in the log", tok)
		}
	}
}

func newElector(t *testing.T, b election.Backend, cfg election.Config) *election.Elector {
	t.Helper()
	el, err := election.New(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = el.Close(context.Background()) })
	return el
}

func newCandidate(t *testing.T, el *election.Elector, id string) *election.Candidate {
	t.Helper()
	c, err := el.NewCandidate(election.CandidateConfig{Name: "jobs", ID: id})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// recordingBackend remembers every owner token claimed through it.
type recordingBackend struct {
	election.Backend
	tokens *tokenLog
}

func (b *recordingBackend) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	s, err := b.Backend.OpenSession(ctx, ttl)
	if err != nil {
		return nil, err
	}
	return &recordingSession{Session: s, tokens: b.tokens}, nil
}

type recordingSession struct {
	election.Session
	tokens *tokenLog
}

func (s *recordingSession) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	s.tokens.add(req.Token)
	return s.Session.Claim(ctx, req)
}

type tokenLog struct {
	mu     sync.Mutex
	tokens []string
}

func (l *tokenLog) add(tok string) {
	l.mu.Lock()
	l.tokens = append(l.tokens, tok)
	l.mu.Unlock()
}

func (l *tokenLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.tokens...)
}

func (l *tokenLog) hasPrefix(p string) bool {
	for _, tok := range l.all() {
		if strings.HasPrefix(tok, p) && len(tok) > len(p) {
			return true
		}
	}
	return false
}

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
