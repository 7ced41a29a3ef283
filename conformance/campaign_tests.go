package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/electionkit/election"
)

// testOneLeader: among five concurrent candidates exactly one leads, and
// every candidate agrees who it is.
func testOneLeader(e *env) {
	var cs []*election.Candidate
	for _, id := range ids("c", 5) {
		n := e.newNode(id)
		cs = append(cs, e.newCandidate(n, "one-leader", id, map[string]string{"addr": id + ":80"}))
	}
	start := make(chan struct{})
	errs := make(chan error, len(cs))
	for _, c := range cs {
		go func() {
			<-start
			errs <- c.Start(e.ctx)
		}()
	}
	close(start)
	for range cs {
		if err := <-errs; err != nil {
			e.t.Fatalf("Start: %v", err)
		}
	}
	var leader *election.Candidate
	e.waitFor(e.settle(), "exactly one leader", func() bool { leader = leaderOf(cs); return leader != nil })
	e.waitFor(e.settle(), "every candidate to agree on the leader", func() bool {
		for _, c := range cs {
			l, ok := c.Leader()
			if !ok || l.ID != leader.ID() || l.Metadata["addr"] != leader.ID()+":80" {
				return false
			}
		}
		return true
	})
	if leaderOf(cs) != leader {
		e.t.Fatalf("leadership moved or doubled while candidates agreed")
	}
	e.checkIntervals()
}

// testHandoffs: 30 forced handoffs among five candidates; terms never
// overlap and fences strictly increase.
func testHandoffs(e *env) {
	var cs []*election.Candidate
	for _, id := range ids("h", 5) {
		cs = append(cs, e.candidate(e.newNode(id), "handoffs", id, nil))
	}
	for i := 0; i < 30; i++ {
		var l *election.Candidate
		e.waitFor(e.settle(), fmt.Sprintf("a leader before handoff %d", i), func() bool { l = leaderOf(cs); return l != nil })
		before := e.termCount("handoffs")
		if i%3 == 2 {
			// Stop and replace the leader: handoff through Stop.
			e.stop(l)
			for j, c := range cs {
				if c == l {
					cs[j] = e.candidate(e.newNode(fmt.Sprintf("h-r%d", i)), "handoffs", fmt.Sprintf("h-r%d", i), nil)
				}
			}
		} else if err := l.Resign(e.ctx); errors.Is(err, election.ErrUnavailable) {
			// The release did not finish within OpTimeout (a loaded
			// machine): Resign says so, and the elector retries it in
			// the background, so the handoff still comes.
			e.t.Logf("handoff %d: Resign: %v", i, err)
		} else if err != nil {
			e.t.Fatalf("handoff %d: Resign: %v", i, err)
		}
		e.waitFor(e.settle(), fmt.Sprintf("a new term after handoff %d", i), func() bool { return e.termCount("handoffs") > before })
	}
	if n := e.checkIntervals(); n < 31 {
		e.t.Fatalf("saw %d terms, want at least 31 for 30 handoffs", n)
	}
}

// testManyElections: 50 elections × 3 candidates each have exactly one
// leader, independently.
func testManyElections(e *env) {
	nodes := []*node{e.newNode("m-0"), e.newNode("m-1"), e.newNode("m-2")}
	byElection := map[string][]*election.Candidate{}
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("many-%02d", i)
		for _, n := range nodes {
			byElection[name] = append(byElection[name], e.candidate(n, name, n.id, nil))
		}
	}
	e.waitFor(e.settle(), "one leader in each of 50 elections", func() bool {
		for _, cs := range byElection {
			if leaderOf(cs) == nil {
				return false
			}
		}
		return true
	})
	// Handlers record their terms in their own goroutines, just after
	// IsLeader turns true.
	e.waitFor(e.settle(), "a recorded term in each of 50 elections", func() bool {
		for name := range byElection {
			if e.termCount(name) == 0 {
				return false
			}
		}
		return true
	})
	if n := e.checkIntervals(); n < 50 {
		e.t.Fatalf("saw %d terms over 50 elections", n)
	}
}

// testKeepsLeadership: a leader keeps leading over five TTLs by renewing.
func testKeepsLeadership(e *env) {
	n := e.newNode("k")
	c := e.candidate(n, "keeps", "k", nil)
	e.waitFor(e.settle(), "leadership", c.IsLeader)
	term, _ := c.Term()
	end := time.Now().Add(5 * e.timing.TTL)
	for time.Now().Before(end) {
		if cur, ok := c.Term(); !ok || cur.Fence != term.Fence {
			e.t.Fatalf("leadership ended or changed after %v (< 5 TTLs) with no fault", time.Since(term.Since))
		}
		time.Sleep(e.timing.TTL / 20)
	}
	if n.sawEvent(election.EventLost, nil) {
		e.t.Fatalf("a Lost event was reported without a fault")
	}
	if e.termCount("keeps") != 1 {
		e.t.Fatalf("%d terms, want 1", e.termCount("keeps"))
	}
}

// testGracefulHandoff: Stop and Resign hand over far sooner than the TTL,
// which proves the waiting candidate learned of the release by a push.
func testGracefulHandoff(e *env) {
	a := e.candidate(e.newNode("a"), "graceful", "a", nil)
	e.waitFor(e.settle(), "a to lead", a.IsLeader)
	b := e.candidate(e.newNode("b"), "graceful", "b", nil)
	e.waitFor(e.settle(), "b to see a as leader", func() bool { l, ok := b.Leader(); return ok && l.ID == "a" })

	limit := e.timing.TTL / 2
	start := time.Now()
	e.stop(a)
	e.waitFor(e.settle(), "b to lead after a's Stop", b.IsLeader)
	if took := time.Since(start); took >= limit {
		e.t.Fatalf("handoff on Stop took %v, not under TTL/2 = %v: the release was not pushed", took, limit)
	}

	c := e.candidate(e.newNode("c"), "graceful", "c", nil)
	e.waitFor(e.settle(), "c to see b as leader", func() bool { l, ok := c.Leader(); return ok && l.ID == "b" })
	start = time.Now()
	if err := b.Resign(e.ctx); err != nil {
		e.t.Fatalf("Resign: %v", err)
	}
	e.waitFor(e.settle(), "c to lead after b's Resign", c.IsLeader)
	if took := time.Since(start); took >= limit {
		e.t.Fatalf("handoff on Resign took %v, not under TTL/2 = %v", took, limit)
	}
	e.checkIntervals()
}

// testObserver: an observer sees every term in order with identity,
// metadata and fence. Each term lasts until the observer has seen it (or
// the suite's settle time passes), so that the check does not depend on
// how fast the store pushes changes.
func testObserver(e *env) {
	obs := e.newNode("observer")
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	changes, err := obs.el.Observe(ctx, "observed")
	if err != nil {
		e.t.Fatalf("Observe: %v", err)
	}
	var (
		mu   sync.Mutex
		seen []election.Leader
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ch := range changes {
			if ch.Leader != nil {
				mu.Lock()
				seen = append(seen, *ch.Leader)
				mu.Unlock()
			}
		}
	}()
	var terms []election.Term
	for _, id := range []string{"o1", "o2", "o3"} {
		c := e.candidate(e.newNode(id), "observed", id, map[string]string{"who": id})
		e.waitFor(e.settle(), id+" to lead", c.IsLeader)
		t, _ := c.Term()
		terms = append(terms, t)
		e.waitFor(e.settle(), "the observer to see "+id, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) > 0 && seen[len(seen)-1].Fence >= t.Fence
		})
		e.stop(c)
	}
	cancel()
	<-done
	if len(seen) != len(terms) {
		e.t.Fatalf("observer saw %d leaders %v, want the %d terms %v in order", len(seen), seen, len(terms), terms)
	}
	for i, t := range terms {
		s := seen[i]
		if s.ID != t.ID || s.Fence != t.Fence || s.Metadata["who"] != t.ID {
			e.t.Fatalf("observer change %d = %+v, want leader %s fence %d with metadata who=%s", i, s, t.ID, t.Fence, t.ID)
		}
	}
}
