package election_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// An idle election costs no goroutine: 1,000 leaders and 1,000 waiters on
// the memory backend (which watches by callback, election.Notifier) add
// only the electors' own few goroutines once all are settled. The bytes
// per election are logged; bench/ measures them on every store.
func TestIdleCost(t *testing.T) {
	const n = 1000
	heap := func() (uint64, int) {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse, runtime.NumGoroutine()
	}
	store := memory.NewStore()
	mk := func() *election.Elector {
		el, err := election.New(store.NewClient(), election.Config{TTL: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return el
	}
	b0, g0 := heap()
	leaders, waiters := mk(), mk()
	all := make([]*election.Candidate, 0, 2*n)
	for _, el := range []*election.Elector{leaders, waiters} {
		for i := range n {
			c, err := el.NewCandidate(election.CandidateConfig{Name: fmt.Sprintf("job-%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			all = append(all, c)
		}
	}
	for i, c := range all[:n] {
		if !c.IsLeader() {
			t.Fatalf("leader %d does not lead", i)
		}
	}
	// Let every waiter see its leader, then count.
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range all[n:] {
		for {
			if l, ok := c.Leader(); ok && l.ID != c.ID() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiter %s never saw its leader", c.Election())
			}
			time.Sleep(time.Millisecond)
		}
	}
	var b1 uint64
	var extra int
	for try := 0; try < 50; try++ { // a timer's short-lived activation may be running
		var g1 int
		b1, g1 = heap()
		if extra = g1 - g0; extra <= 20 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if extra > 20 {
		t.Errorf("%d goroutines more for %d idle elections (leaders and waiters), want at most the electors' own (20)", extra, 2*n)
	}
	t.Logf("%d elections: %d goroutines and %d bytes of heap and stack each", 2*n, extra/(2*n), (b1-b0)/(2*n))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, el := range []*election.Elector{leaders, waiters} {
		if err := el.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
