// Package termlog records leadership terms as the leaders' handlers see
// them and checks the record for the two safety properties every backend
// must keep: no two terms of one election overlap, and each term's fence is
// greater than the one before it.
package termlog

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// Log is a record of terms. Its zero value is empty and ready; it is safe
// for concurrent use.
type Log struct {
	mu    sync.Mutex
	terms []*term
}

// term is one leadership interval: from the handler's start to the moment
// it saw its context cancelled.
type term struct {
	election, id string
	fence        uint64
	start, end   time.Time // end zero while leading
}

// Handler is an election.Handler that records its term: it starts when
// the handler is called and ends when the handler sees its context done.
func (l *Log) Handler(ctx context.Context, t election.Term) {
	lt := &term{election: t.Election, id: t.ID, fence: t.Fence, start: time.Now()}
	l.mu.Lock()
	l.terms = append(l.terms, lt)
	l.mu.Unlock()
	<-ctx.Done()
	l.mu.Lock()
	lt.end = time.Now()
	l.mu.Unlock()
}

// Count returns the number of terms of election name recorded so far.
func (l *Log) Count(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, t := range l.terms {
		if t.election == name {
			n++
		}
	}
	return n
}

// Check reports on tb, as errors, every pair of consecutive terms of one
// election that overlap (the earlier one had not ended when the later one
// started) or whose fence did not increase. It returns the number of terms
// recorded.
func (l *Log) Check(tb testing.TB) int {
	tb.Helper()
	l.mu.Lock()
	byElection := map[string][]term{}
	for _, t := range l.terms {
		byElection[t.election] = append(byElection[t.election], *t)
	}
	l.mu.Unlock()
	total := 0
	for name, terms := range byElection {
		sort.Slice(terms, func(i, j int) bool { return terms[i].start.Before(terms[j].start) })
		for i := 1; i < len(terms); i++ {
			prev, cur := terms[i-1], terms[i]
			if prev.end.IsZero() || !prev.end.Before(cur.start) {
				tb.Errorf("election %q: two leaders: %s (fence %d) still leading when %s (fence %d) started",
					name, prev.id, prev.fence, cur.id, cur.fence)
			}
			if cur.fence <= prev.fence {
				tb.Errorf("election %q: fence went from %d (%s) to %d (%s): not strictly increasing",
					name, prev.fence, prev.id, cur.fence, cur.id)
			}
		}
		total += len(terms)
	}
	return total
}
