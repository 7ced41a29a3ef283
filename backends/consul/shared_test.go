package consul

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/faultproxy"
)

// queries returns the number of buckets whose blocking query runs.
func (h *hub) queries() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, bk := range h.buckets {
		if bk != nil {
			n++
		}
	}
	return n
}

// waitFor polls cond every 10ms until it holds, failing after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ownGoroutines counts the goroutines running this module's code. The HTTP
// transport's two goroutines per pooled connection are left out: how many
// connections the bucket queries hold depends on how their requests happen
// to overlap (a full run once counted 44 more at 1,000 names than at 100),
// not on the number of names.
func ownGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("github.com/electionkit/election")) {
			count++
		}
	}
	return count
}

// TestSharedWatches: a thousand watched elections cost one blocking query
// per bucket, no goroutine per name, and every watch sees its election's
// changes; the queries stop when nothing is watched any more.
func TestSharedWatches(t *testing.T) {
	a := startAgent(t, agentOptions{})
	owner := a.backend(t, nil)
	watcher := a.backend(t, func(c *Config) { c.WatchWait = 30 * time.Second })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	const few, many = 100, 1000
	chans := make([]<-chan election.WatchEvent, many)
	var goroutines [2]int
	for i := range many {
		if i == few {
			goroutines[0] = ownGoroutines()
		}
		ch, err := watcher.Watch(ctx, fmt.Sprintf("shared-%04d", i))
		if err != nil {
			t.Fatal(err)
		}
		if ev := next(t, ch, 10*time.Second); ev.Err != nil || ev.Leader != nil {
			t.Fatalf("first event of shared-%04d = %+v, want vacant", i, ev)
		}
		chans[i] = ch
	}
	goroutines[1] = ownGoroutines()
	// Every bucket is in use: 1,000 names leave none empty.
	if q := watcher.watches.queries(); q != bucketCount {
		t.Fatalf("%d blocking queries for %d watched names, want one per bucket (%d)", q, many, bucketCount)
	}
	if grew := goroutines[1] - goroutines[0]; grew > 20 {
		t.Fatalf("goroutines running this module's code went from %d with %d watches to %d with %d: not independent of the number of names",
			goroutines[0], few, goroutines[1], many)
	}
	t.Logf("%d watches: %d blocking queries; goroutines %d at %d watches, %d at %d",
		many, bucketCount, goroutines[0], few, goroutines[1], many)

	s := openSession(t, owner, 5*time.Second)
	fences := make([]uint64, many)
	for i := range many {
		fences[i] = claim(t, s, fmt.Sprintf("shared-%04d", i), fmt.Sprintf("tok-%d", i), "owner").Fence
	}
	for i, ch := range chans {
		if ev := next(t, ch, 10*time.Second); ev.Err != nil || ev.Leader == nil || ev.Leader.Fence != fences[i] {
			t.Fatalf("shared-%04d after its claim: %+v, want fence %d", i, ev, fences[i])
		}
	}

	cancel()
	for i, ch := range chans {
		for ev := range ch {
			if ev.Err != nil {
				t.Fatalf("shared-%04d: %v after its context ended", i, ev.Err)
			}
		}
	}
	waitFor(t, 5*time.Second, "blocking queries to stop once nothing is watched", func() bool { return watcher.watches.queries() == 0 })
}

// TestWatchSlowReceiver: a receiver that does not read holds up neither the
// shared query nor the other receivers; when it reads, it gets the newest
// state, the ones in between coalesced into it.
func TestWatchSlowReceiver(t *testing.T) {
	a := startAgent(t, agentOptions{})
	owner, watcher := a.backend(t, nil), a.backend(t, nil)
	const name = "slow-receiver"
	slow, err := watcher.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := watcher.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	next(t, fast, 10*time.Second)
	s := openSession(t, owner, 5*time.Second)
	var last election.Claim
	for i := range 5 {
		last = claim(t, s, name, fmt.Sprintf("t%d", i), fmt.Sprintf("holder-%d", i))
		if ev := next(t, fast, 10*time.Second); ev.Leader == nil || ev.Leader.Fence != last.Fence {
			t.Fatalf("fast receiver after claim %d: %+v, want fence %d", i, ev, last.Fence)
		}
		if i < 4 {
			if err := s.Release(t.Context(), last); err != nil {
				t.Fatal(err)
			}
			if ev := next(t, fast, 10*time.Second); ev.Leader != nil {
				t.Fatalf("fast receiver after release %d: %+v, want vacant", i, ev)
			}
		}
	}
	// slow never read: not even its first event. It holds only the newest.
	ev := next(t, slow, time.Second)
	if ev.Err != nil || ev.Leader == nil || ev.Leader.Fence != last.Fence || ev.Leader.ID != "holder-4" {
		t.Fatalf("slow receiver's first read = %+v, want the newest state (holder-4, fence %d)", ev, last.Fence)
	}
	select {
	case ev := <-slow:
		t.Fatalf("slow receiver has a second event %+v queued: older states were not coalesced", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestWatchCut cuts the link of a backend that watches many elections
// (partition by a fault proxy: connections hang) while another backend
// changes them: the shared queries fail, every watch gets its Err and is
// closed, and once the link heals every election's watch, re-established as
// the core does it, shows the store's final state; no stream ever goes
// back to an older term, and changes made after the heal are each seen.
func TestWatchCut(t *testing.T) {
	a := startAgent(t, agentOptions{})
	var clients faultproxy.Clients
	t.Cleanup(func() { clients.CloseAll() })
	wb, link, err := clients.Dial(a.addr, func(addr string) (election.Backend, error) {
		return New(Config{Address: addr, MinTTL: testMinTTL, WatchWait: time.Second})
	})
	if err != nil {
		t.Fatal(err)
	}
	watcher := wb.(*Backend)
	owner := a.backend(t, nil)

	const n = 200
	name := func(i int) string { return fmt.Sprintf("cut-%03d", i) }
	ctx, cancel := context.WithCancel(t.Context())
	streams := make([]*stream, n)
	var wg sync.WaitGroup
	for i := range n {
		streams[i] = &stream{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			streams[i].follow(ctx, watcher, name(i))
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
	}()

	// final reads each election's state from the store and waits until
	// every stream shows it.
	converge := func(when string) {
		t.Helper()
		for i := range n {
			want := uint64(0)
			if l, err := owner.Leader(t.Context(), name(i)); err == nil {
				want = l.Fence
			} else if !errors.Is(err, election.ErrNoLeader) {
				t.Fatal(err)
			}
			waitFor(t, 20*time.Second, fmt.Sprintf("%s: %s's watch to show fence %d", when, name(i), want), func() bool {
				return streams[i].latest() == want
			})
		}
	}

	s1 := openSession(t, owner, 30*time.Second)
	claims := make([]election.Claim, n)
	for i := range n {
		claims[i] = claim(t, s1, name(i), fmt.Sprintf("a-%d", i), "a")
	}
	converge("connected")

	if err := link.Cut(t.Context()); err != nil {
		t.Fatal(err)
	}
	// While cut: release every other election, and give half of those a
	// new holder.
	s2 := openSession(t, owner, 30*time.Second)
	for i := 0; i < n; i += 2 {
		if err := s1.Release(t.Context(), claims[i]); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			claims[i] = claim(t, s2, name(i), fmt.Sprintf("b-%d", i), "b")
		}
	}
	waitFor(t, 20*time.Second, "every watch to report the cut", func() bool {
		for _, st := range streams {
			if st.failures() == 0 {
				return false
			}
		}
		return true
	})
	if err := link.Heal(t.Context()); err != nil {
		t.Fatal(err)
	}
	converge("after the heal")

	// Connected again: each change is seen before the next one is made.
	for i := 1; i < n; i += 2 {
		if err := s1.Release(t.Context(), claims[i]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, name(i)+"'s release to be seen", func() bool { return streams[i].latest() == 0 })
		claims[i] = claim(t, s2, name(i), fmt.Sprintf("c-%d", i), "c")
		waitFor(t, 10*time.Second, name(i)+"'s new claim to be seen", func() bool { return streams[i].latest() == claims[i].Fence })
	}
	for i, st := range streams {
		if problems := st.check(); len(problems) > 0 {
			t.Errorf("%s: %v", name(i), problems)
		}
	}
	t.Logf("%d elections, each watch failed %d to %d times during the cut and recovered",
		n, minFailures(streams), maxFailures(streams))
}

// stream is what one election's watcher saw, re-watching after each Err
// the way the core does.
type stream struct {
	mu     sync.Mutex
	events []uint64 // fence of each event's holder, 0 for a vacancy
	errs   int
}

func (s *stream) follow(ctx context.Context, b *Backend, name string) {
	for ctx.Err() == nil {
		ch, err := b.Watch(ctx, name)
		if err != nil {
			return
		}
		for ev := range ch {
			s.mu.Lock()
			if ev.Err != nil {
				s.errs++
			} else if ev.Leader == nil {
				s.events = append(s.events, 0)
			} else {
				s.events = append(s.events, ev.Leader.Fence)
			}
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// latest returns the fence of the last event, 0 when vacant or none.
func (s *stream) latest() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.events) == 0 {
		return 1<<64 - 1 // no event yet: matches nothing
	}
	return s.events[len(s.events)-1]
}

func (s *stream) failures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errs
}

// check reports a holder with a fence below an earlier holder's, and a term
// shown again after a vacancy or another term.
func (s *stream) check() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var problems []string
	var top uint64
	for i, f := range s.events {
		switch {
		case f == 0:
		case f < top:
			problems = append(problems, fmt.Sprintf("event %d: fence %d after fence %d", i, f, top))
		case f == top && s.events[i-1] != f:
			problems = append(problems, fmt.Sprintf("event %d: term %d shown again", i, f))
		}
		top = max(top, f)
	}
	return problems
}

func minFailures(ss []*stream) int {
	m := ss[0].failures()
	for _, s := range ss {
		m = min(m, s.failures())
	}
	return m
}

func maxFailures(ss []*stream) int {
	m := 0
	for _, s := range ss {
		m = max(m, s.failures())
	}
	return m
}

// TestNotify: the function form of Watch gets the same events, one call at
// a time and never with the backend's lock held (it may watch again from
// inside the call), one Err and nothing more after a failure, and nothing
// once its context has ended.
func TestNotify(t *testing.T) {
	a := startAgent(t, agentOptions{})
	var clients faultproxy.Clients
	t.Cleanup(func() { clients.CloseAll() })
	wb, link, err := clients.Dial(a.addr, func(addr string) (election.Backend, error) {
		return New(Config{Address: addr, MinTTL: testMinTTL, WatchWait: time.Second})
	})
	if err != nil {
		t.Fatal(err)
	}
	b := wb.(*Backend)
	owner := a.backend(t, nil)
	if _, err := b.Notify(t.Context(), "bad\x00name", func(election.WatchEvent) {}); !errors.Is(err, election.ErrInvalidArgument) {
		t.Fatalf("Notify of a bad name = %v, want ErrInvalidArgument", err)
	}

	type seen struct {
		fence uint64 // 0: vacant
		err   error
	}
	var (
		mu      sync.Mutex
		events  []seen
		calls   sync.WaitGroup
		inCall  int
		overlap bool
	)
	got := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	inner, innerCancel := context.WithCancel(t.Context())
	defer innerCancel()
	calls.Add(1)
	first := true
	_, err = b.Notify(ctx, "notified", func(ev election.WatchEvent) {
		mu.Lock()
		inCall++
		overlap = overlap || inCall > 1
		isFirst := first
		first = false
		mu.Unlock()
		if isFirst {
			// Watching from inside the call would deadlock if the
			// backend held its lock while calling.
			if _, err := b.Watch(inner, "notified-inner"); err != nil {
				t.Errorf("Watch from inside a Notify call: %v", err)
			}
			calls.Done()
		}
		mu.Lock()
		s := seen{err: ev.Err}
		if ev.Leader != nil {
			s.fence = ev.Leader.Fence
		}
		events = append(events, s)
		inCall--
		mu.Unlock()
		got <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	last := func() seen {
		t.Helper()
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("no Notify call within 10s")
		}
		mu.Lock()
		defer mu.Unlock()
		return events[len(events)-1]
	}
	if s := last(); s.err != nil || s.fence != 0 {
		t.Fatalf("first event %+v, want vacant", s)
	}
	calls.Wait()
	s := openSession(t, owner, 30*time.Second)
	c := claim(t, s, "notified", "t", "owner")
	if ev := last(); ev.fence != c.Fence {
		t.Fatalf("event after the claim %+v, want fence %d", ev, c.Fence)
	}
	if err := s.Release(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if ev := last(); ev.fence != 0 || ev.err != nil {
		t.Fatalf("event after the release %+v, want vacant", ev)
	}

	// A failure: one Err, then nothing, whatever changes.
	if err := link.Cut(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ev := last(); !errors.Is(ev.err, election.ErrUnavailable) {
		t.Fatalf("event with the link cut %+v, want Err wrapping ErrUnavailable", ev)
	}
	if err := link.Heal(t.Context()); err != nil {
		t.Fatal(err)
	}
	claim(t, s, "notified", "t2", "owner")
	select {
	case <-got:
		t.Fatalf("a call after the failure's Err: %+v", events[len(events)-1])
	case <-time.After(2 * time.Second):
	}

	// A new watch, its context ended (it bounds the set-up only), then
	// stop: no call after that.
	ctx2, cancel2 := context.WithCancel(t.Context())
	stop2, err := b.Notify(ctx2, "notified", func(ev election.WatchEvent) { got <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	cancel2()
	last()
	stop2()
	waitFor(t, 5*time.Second, "the watch to be forgotten", func() bool {
		b.watches.mu.Lock()
		defer b.watches.mu.Unlock()
		bk := b.watches.buckets[bucketOf("notified")]
		return bk == nil || bk.entries[escapeName("notified")] == nil
	})
	if err := s.Release(t.Context(), election.Claim{Name: "notified", Token: "t2"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
		t.Fatalf("a call after the context ended")
	case <-time.After(2 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	if overlap {
		t.Fatalf("calls for one watch overlapped")
	}
}
