package redis

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/history"
)

// operatorWorld is one election of candidates on one redis-server, each
// with an elector (a Backend and a session) of its own, recorded by a
// history.
type operatorWorld struct {
	srv      *server
	hist     *history.Recorder
	ttl      time.Duration
	election string
	cands    map[string]*election.Candidate
	backends map[string]*Backend
}

func newRedisOperatorWorld(t *testing.T, ttl time.Duration) *operatorWorld {
	t.Helper()
	return &operatorWorld{srv: startServer(t), hist: history.New(time.Now), ttl: ttl, election: "operator",
		cands: map[string]*election.Candidate{}, backends: map[string]*Backend{}}
}

// start starts candidate id on an elector of its own.
func (w *operatorWorld) start(t *testing.T, id string) *election.Candidate {
	t.Helper()
	b := newBackend(t, w.srv.client(t), Config{Quarantine: 100 * time.Millisecond})
	el, err := election.New(b, election.Config{TTL: w.ttl, OnEvent: w.hist.OnEvent(id)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*w.ttl+5*time.Second)
		defer cancel()
		_ = el.Close(ctx)
	})
	c, err := el.NewCandidate(election.CandidateConfig{Name: w.election, ID: id, Handlers: []election.Handler{w.hist.Handler(id)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	w.cands[id], w.backends[id] = c, b
	return c
}

// leaderAndWaiter starts a, waits for it to lead, then starts b, and
// returns a's term.
func (w *operatorWorld) leaderAndWaiter(t *testing.T) (*election.Candidate, election.Term) {
	t.Helper()
	a := w.start(t, "a")
	waitUntil(t, 20*time.Second, "a to lead", a.IsLeader)
	b := w.start(t, "b")
	held, _ := a.Term()
	// b's backend reads the election when its claim finds it taken, when
	// its watch starts, and once its subscription is confirmed (the hub's
	// resync). A test that changes the store behind the library's back
	// must come after those reads, or b's read sees the change.
	waitUntil(t, 20*time.Second, "b to follow a with a synced subscription", func() bool {
		l, ok := b.Leader()
		return ok && l.ID == "a" && b.State() == election.StateCampaigning && w.backends["b"].watching(w.election)
	})
	return a, held
}

// watching reports whether b's hub is subscribed, has read every watched
// election since the subscription was confirmed, and has seen name.
func (b *Backend) watching(name string) bool {
	h, err := b.currentHub()
	if err != nil || !h.isSynced() {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[name]
	return t != nil && t.seen && !h.resyncing
}

// termAbove waits for a term of the election with a fence above fence,
// held by any candidate, and for the handler of the term with that fence
// to have returned.
func (w *operatorWorld) termAbove(t *testing.T, old election.Term, after string) election.Term {
	t.Helper()
	var next election.Term
	waitUntil(t, 30*time.Second, "a new term after "+after, func() bool {
		for _, c := range w.cands {
			if term, ok := c.Term(); ok && term.Fence > old.Fence {
				next = term
				return true
			}
		}
		return false
	})
	waitUntil(t, 3*w.ttl, "the handler of the old term to return", func() bool {
		for _, r := range w.hist.Runs() {
			if r.Fence == old.Fence && r.Candidate == old.ID && !r.End.IsZero() {
				return true
			}
		}
		return false
	})
	return next
}

// loss returns the reason candidate id's elector gave for losing term.
func (w *operatorWorld) loss(t *testing.T, term election.Term) election.LossReason {
	t.Helper()
	for _, ev := range w.hist.Events() {
		if ev.Process == term.ID && ev.Kind == election.EventLost && ev.Fence == term.Fence {
			return ev.Reason
		}
	}
	t.Fatalf("no EventLost for %s's term (fence %d)", term.ID, term.Fence)
	return ""
}

// lostAtRenewal checks that term ended because a renewal of its session
// reported ErrSessionExpired: its elector reported that renewal failure
// before the loss. The loss's reason is session-expired, or deadline: the
// core ends the term's deadline at once when its session expires, and that
// timer can report first (a race in the core's reason, not in the timing).
func (w *operatorWorld) lostAtRenewal(t *testing.T, term election.Term) election.LossReason {
	t.Helper()
	renewFailed := false
	for _, ev := range w.hist.Events() {
		switch {
		case ev.Process != term.ID:
		case ev.Kind == election.EventRenewFailed && errors.Is(ev.Err, election.ErrSessionExpired):
			renewFailed = true
		case ev.Kind == election.EventLost && ev.Fence == term.Fence:
			if !renewFailed {
				t.Errorf("%s lost its term (%q) before any renewal reported ErrSessionExpired", term.ID, ev.Reason)
			}
			if ev.Reason != election.LossSessionExpired && ev.Reason != election.LossDeadline {
				t.Errorf("%s lost its term with reason %q, want %q", term.ID, ev.Reason, election.LossSessionExpired)
			}
			return ev.Reason
		}
	}
	t.Fatalf("no EventLost for %s's term (fence %d)", term.ID, term.Fence)
	return ""
}

// reportExceptOverlap reports every violation of the history but an
// overlap of two terms, which the README allows for these actions.
func (w *operatorWorld) reportExceptOverlap(t *testing.T) {
	t.Helper()
	for _, v := range w.hist.Check(history.Bounds{}) {
		if v.Property == "exclusion" {
			t.Logf("an overlap the README allows for this action: %v", v)
			continue
		}
		t.Errorf("%v", v)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOperatorActions: what README "Operator actions" says of deletions
// that bypass the library, on a real server, with candidates of the core
// under the history checker.
//   - DeleteClaimKey: nobody announces the delete. Readers see the
//     election vacant while its holder keeps leading, and a waiter does
//     not claim it; a candidate that starts then is elected at once, and
//     the holder steps down on that claim's announcement (not at its
//     deadline); the two overlap until it arrives.
//   - DeleteSessionKey: the holder's next renewal gets ErrSessionExpired
//     and it steps down then; a term with a greater fence follows.
//   - FlushAll: every session ends; the holder steps down at its next
//     renewal, and the next term's fence is above the lost ones.
func TestOperatorActions(t *testing.T) {
	const ttl = 3 * time.Second
	t.Run("DeleteClaimKey", func(t *testing.T) {
		w := newRedisOperatorWorld(t, ttl)
		a, held := w.leaderAndWaiter(t)
		admin := w.srv.client(t)
		if n, err := admin.Del(t.Context(), keysFor(DefaultPrefix).claim(w.election)).Result(); err != nil || n != 1 {
			t.Fatalf("DEL of the claim key = %d, %v", n, err)
		}
		reader := newBackend(t, w.srv.client(t), Config{})
		if l, err := reader.Leader(t.Context(), w.election); !errors.Is(err, election.ErrNoLeader) {
			t.Fatalf("Leader after the claim key's delete = %+v, %v; want ErrNoLeader", l, err)
		}
		// Two renew intervals: the holder renews its session (which
		// does not read the claim) and the waiter hears nothing.
		time.Sleep(2 * ttl / 3)
		if term, ok := a.Term(); !ok || term.Fence != held.Fence {
			t.Fatalf("a's term after the delete and two renewals = %+v, %v; want still fence %d (nobody announces a delete)", term, ok, held.Fence)
		}
		if w.cands["b"].IsLeader() {
			t.Fatal("b leads after the claim key's delete: something announced it")
		}
		started := time.Now()
		w.start(t, "c")
		next := w.termAbove(t, held, "c started")
		if reason := w.loss(t, held); reason == election.LossDeadline {
			t.Errorf("a stepped down at its deadline (reason %q), not on the next claim's announcement", reason)
		}
		t.Logf("claim key deleted: a kept leading; %s elected %v after c started (fence %d > %d); a lost its term (%q)",
			next.ID, next.Since.Sub(started), next.Fence, held.Fence, w.loss(t, held))
		w.reportExceptOverlap(t)
	})
	t.Run("DeleteSessionKey", func(t *testing.T) {
		w := newRedisOperatorWorld(t, ttl)
		_, held := w.leaderAndWaiter(t)
		admin := w.srv.client(t)
		stored, err := admin.Get(t.Context(), keysFor(DefaultPrefix).claim(w.election)).Result()
		if err != nil {
			t.Fatal(err)
		}
		rec, err := decodeClaim(w.election, keysFor(DefaultPrefix).claim(w.election), stored)
		if err != nil || rec.Session == "" {
			t.Fatalf("claim value names no session (%v)", err)
		}
		session := rec.Session
		deleted := time.Now()
		if n, err := admin.Del(t.Context(), keysFor(DefaultPrefix).session(session)).Result(); err != nil || n != 1 {
			t.Fatalf("DEL of the session key = %d, %v", n, err)
		}
		next := w.termAbove(t, held, "the session key's delete")
		t.Logf("session key deleted: a lost its term at its next renewal (%q); %s elected %v after the delete (fence %d > %d)",
			w.lostAtRenewal(t, held), next.ID, next.Since.Sub(deleted), next.Fence, held.Fence)
		w.reportExceptOverlap(t)
	})
	t.Run("FlushAll", func(t *testing.T) {
		w := newRedisOperatorWorld(t, ttl)
		_, held := w.leaderAndWaiter(t)
		flushed := time.Now()
		if err := w.srv.client(t).FlushAll(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		next := w.termAbove(t, held, "FLUSHALL")
		t.Logf("FLUSHALL: a lost its term at its next renewal (%q); %s elected %v after (fence %d > %d)",
			w.lostAtRenewal(t, held), next.ID, next.Since.Sub(flushed), next.Fence, held.Fence)
		w.reportExceptOverlap(t)
	})
}
