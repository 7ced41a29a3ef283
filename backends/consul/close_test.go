package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// closeTTL is the TTL of the Close tests: with the default lock-delay (the
// TTL), a key held by a destroyed session cannot be claimed for 30s, twice
// the 15s the tests give a successor.
const closeTTL = 30 * time.Second

// txns counts the transactions among reqs (see recorder).
func txns(reqs []string) int {
	n := 0
	for _, r := range reqs {
		if r == "PUT /v1/txn" {
			n++
		}
	}
	return n
}

// TestCloseEndsClaims: an Elector with the default lock-delay whose n
// candidates lead is closed; its session's Close deletes their keys in
// ⌈n/32⌉ transactions, not one release each, and then a second Backend's
// candidates are elected in every election within 15s, half the
// lock-delay that a Destroy of the session holding the keys would have
// started.
func TestCloseEndsClaims(t *testing.T) {
	const n = 200
	a := startAgent(t, agentOptions{})
	b1, rec := a.recordedBackend(t, nil)
	b2 := a.backend(t, nil)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("close-%03d", i)
	}

	el1, first := startCandidates(t, b1, names, "first")
	allLead(t, b1, first, time.Minute, "first elector")
	var ender election.SessionEnder = openSession(t, b1, closeTTL)
	if !ender.EndsClaims() {
		t.Fatalf("EndsClaims = false with the default lock-delay, want true")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var err error
	reqs, _ := rec.during(func() { err = el1.Close(ctx) })
	if err != nil {
		t.Fatalf("Close = %v", err)
	}
	want := (n + endClaimsPerTxn - 1) / endClaimsPerTxn
	// Slack of 2 for a renewal that finds the session's marker changed
	// when Close began (it reads the claims in read-only transactions);
	// one release per claim would make n.
	if got := txns(reqs); got > want+2 {
		t.Fatalf("Close of %d leaders made %d transactions, want about %d (%d per transaction): %d requests in all",
			n, got, want, endClaimsPerTxn, len(reqs))
	}
	t.Logf("Close of %d leaders: %d requests, %d of them transactions", n, len(reqs), txns(reqs))

	_, second := startCandidates(t, b2, names, "second")
	allLead(t, b2, second, 15*time.Second, fmt.Sprintf("after the first elector's Close (lock-delay %v)", closeTTL))
}

// startCandidates starts an Elector of b with one candidate per name, TTL
// closeTTL, and returns it, closed when the test ends, with its candidates.
func startCandidates(t *testing.T, b *Backend, names []string, id string) (*election.Elector, []*election.Candidate) {
	t.Helper()
	el, err := election.New(b, election.Config{TTL: closeTTL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { el.Close(context.Background()) })
	cands := make([]*election.Candidate, len(names))
	for i, name := range names {
		if cands[i], err = el.NewCandidate(election.CandidateConfig{Name: name, ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	work := make(chan *election.Candidate)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for c := range work {
				if err := c.Start(t.Context()); err != nil {
					t.Errorf("start %s of %s: %v", c.Election(), id, err)
				}
			}
		})
	}
	for _, c := range cands {
		work <- c
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return el, cands
}

// allLead waits until every candidate of cands (of b) leads, or fails the test
// once d has passed.
func allLead(t *testing.T, b *Backend, cands []*election.Candidate, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, c := range cands {
		for !c.IsLeader() {
			if time.Now().After(deadline) {
				l, err := b.Leader(t.Context(), c.Election())
				t.Fatalf("%s: %s not elected within %v: Leader = %+v, %v", what, c.Election(), d, l, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestCloseSkipsLostClaims: some claims of a session are released
// elsewhere, deleted by an operator, or taken since by another session;
// Close still succeeds, deletes only the keys the session still holds, and
// leaves the other session's keys of the same names alone. A claim the
// session does not know it made (an outcome-unknown claim) goes with the
// Destroy, under the lock-delay.
func TestCloseSkipsLostClaims(t *testing.T) {
	a := startAgent(t, agentOptions{})
	b, rec := a.recordedBackend(t, nil)
	other := a.backend(t, nil)
	raw := a.client(t)
	s := openSession(t, b, closeTTL)
	so, s3, s4 := openSession(t, other, closeTTL), openSession(t, other, closeTTL), openSession(t, other, closeTTL)

	const n = 70 // 69 known to Close (one is made unknown below): 32, 32 and 5 claims
	claims := make([]election.Claim, n)
	for i := range claims {
		claims[i] = claim(t, s, fmt.Sprintf("lost-%02d", i), fmt.Sprintf("tok-%02d", i), "holder")
	}
	retaken := map[int]election.Claim{} // by index: another session's claim of the same name
	for _, i := range []int{5, 40, 69} {
		if err := so.Release(t.Context(), claims[i]); err != nil {
			t.Fatalf("release of %s elsewhere: %v", claims[i].Name, err)
		}
	}
	if _, err := raw.KV().Delete(b.Key(claims[33].Name), nil); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{5, 40, 33} {
		retaken[i] = claim(t, s3, claims[i].Name, "other-token", "other")
	}
	unknown := claims[60]
	s.forget(unknown.Name, unknown.Token) // as if its Claim had got no answer
	// As if Raft indexes had started again after a server lost its data:
	// s remembers claim 40 with the index of the other session's key that
	// now holds its election. A check of the fence would delete that key.
	s.mu.Lock()
	s.made[claims[40].Name] = madeClaim{token: claims[40].Token, fence: retaken[40].Fence}
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var err error
	reqs, _ := rec.during(func() { err = s.Close(ctx) })
	if err != nil {
		t.Fatalf("Close = %v", err)
	}
	// Three transactions, and one more for each that met a lost claim: at
	// most one per lost claim if Consul named only one failed check.
	if got := txns(reqs); got < 4 || got > 7 {
		t.Fatalf("Close made %d transactions (%v), want 3 plus 1 to 4 retries", got, reqs)
	}

	for i, c := range claims {
		p := rawKey(t, raw, b, c.Name)
		if r, ok := retaken[i]; ok {
			if p == nil || p.Session != s3.id || p.ModifyIndex != r.Fence {
				t.Fatalf("%s, retaken by another session at fence %d, after Close = %+v, want that session's key untouched", c.Name, r.Fence, p)
			}
			continue
		}
		if p != nil {
			t.Fatalf("%s after Close = %+v, want deleted", c.Name, p)
		}
		_, err := s4.Claim(t.Context(), election.ClaimRequest{Name: c.Name, Token: "next", ID: "next"})
		var te *election.TakenError
		switch {
		case c == unknown:
			if !errors.As(err, &te) || te.Holder.ID != "" || !strings.Contains(err.Error(), "lock-delay") {
				t.Fatalf("claim of %s, left to the Destroy, = %v, want refused for the lock-delay", c.Name, err)
			}
		case err != nil:
			t.Fatalf("claim of %s after Close = %v, want it elected at once (Close deleted the key, no lock-delay)", c.Name, err)
		}
	}
}

// TestCloseAfterSessionGone: once the store has said that the session is
// gone (Consul deleted its keys with it), Close sends no transaction for
// its claims, only the Destroy, and leaves alone the key another session
// took since. (NoLockDelay, so that the other session claims at once.)
func TestCloseAfterSessionGone(t *testing.T) {
	a := startAgent(t, agentOptions{})
	b, rec := a.recordedBackend(t, func(c *Config) { c.LockDelay = NoLockDelay })
	other := a.backend(t, nil)
	raw := a.client(t)
	s := openSession(t, b, closeTTL)
	const n = 40
	claims := make([]election.Claim, n)
	for i := range claims {
		claims[i] = claim(t, s, fmt.Sprintf("gone-%02d", i), fmt.Sprintf("tok-%02d", i), "holder")
	}
	if _, err := raw.Session().Destroy(s.id, nil); err != nil { // an operator
		t.Fatal(err)
	}
	if err := s.Renew(t.Context(), claims); !errors.Is(err, election.ErrSessionExpired) {
		t.Fatalf("Renew after the session was destroyed = %v, want ErrSessionExpired", err)
	}
	so := openSession(t, other, closeTTL)
	taken := claim(t, so, claims[0].Name, "next", "next")
	var err error
	reqs, _ := rec.during(func() { err = s.Close(t.Context()) })
	if err != nil {
		t.Fatalf("Close = %v", err)
	}
	if got := txns(reqs); got != 0 {
		t.Fatalf("Close of a session the store ended made %d transactions (%v), want none", got, reqs)
	}
	if p := rawKey(t, raw, b, claims[0].Name); p == nil || p.Session != so.id || p.ModifyIndex != taken.Fence {
		t.Fatalf("%s after the old session's Close = %+v, want the new holder's key", claims[0].Name, p)
	}
}

// TestReleaseAfterIndexRepeat: a claim this session made is released by
// index and session, not by index alone. After a server lost its data,
// Raft indexes start again, and another session's key can carry the index
// of one of this session's old claims: the release must find it not its
// own and leave it alone.
func TestReleaseAfterIndexRepeat(t *testing.T) {
	a := startAgent(t, agentOptions{})
	b, other := a.backend(t, nil), a.backend(t, nil)
	raw := a.client(t)
	s, so := openSession(t, b, closeTTL), openSession(t, other, closeTTL)
	mine := claim(t, s, "repeat", "tok-mine", "holder")
	if err := so.Release(t.Context(), mine); err != nil { // by token, elsewhere
		t.Fatal(err)
	}
	theirs := claim(t, so, "repeat", "tok-theirs", "other")
	// As if indexes had repeated: s remembers its claim with the index of
	// the other session's key.
	s.mu.Lock()
	s.made[mine.Name] = madeClaim{token: mine.Token, fence: theirs.Fence}
	s.mu.Unlock()
	stale := mine
	stale.Fence = theirs.Fence
	if err := s.Release(t.Context(), stale); !errors.Is(err, election.ErrNotOwner) {
		t.Fatalf("Release of a claim whose index another session's key now has = %v, want ErrNotOwner", err)
	}
	if p := rawKey(t, raw, b, "repeat"); p == nil || p.Session != so.id || p.ModifyIndex != theirs.Fence {
		t.Fatalf("key after the stale release = %+v, want the other session's, fence %d", p, theirs.Fence)
	}
}
