package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

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
	rec := &recorder{base: http.DefaultTransport}
	client, err := api.NewClient(&api.Config{Address: a.addr, HttpClient: &http.Client{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	b1 := a.backend(t, func(c *Config) { c.Address, c.Client = "", client })
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
	reqs, _ := rec.during(func() { err = el1.Close(ctx) })
	if err != nil {
		t.Fatalf("Close = %v", err)
	}
	want := (n + endClaimsPerTxn - 1) / endClaimsPerTxn
	// A renewal in flight when Close began may add a transaction; one
	// release per claim would make n.
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
	rec := &recorder{base: http.DefaultTransport}
	client, err := api.NewClient(&api.Config{Address: a.addr, HttpClient: &http.Client{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	b := a.backend(t, func(c *Config) { c.Address, c.Client = "", client })
	other := a.backend(t, nil)
	raw := a.client(t)
	s := openSession(t, b, closeTTL)
	so, s3, s4 := openSession(t, other, closeTTL), openSession(t, other, closeTTL), openSession(t, other, closeTTL)

	const n = 70 // three transactions: 32, 32 and 6 claims
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

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
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
