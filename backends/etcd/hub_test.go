package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
	"github.com/electionkit/election/internal/faultproxy"
)

// follower follows one election through Backend.Watch the way the core
// does: it watches again after an error event, and records the last state
// seen, the number of failed watches, and any event older than one seen
// before it on the same watch.
type follower struct {
	mu       sync.Mutex
	last     string
	failures int
	reorder  string
}

func follow(ctx context.Context, wg *sync.WaitGroup, b election.Backend, name string) *follower {
	f := &follower{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			events, err := b.Watch(ctx, name)
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			var fence uint64
			for ev := range events {
				f.mu.Lock()
				switch {
				case ev.Err != nil:
					f.failures++
				case ev.Leader != nil && ev.Leader.Fence < fence:
					f.reorder = fmt.Sprintf("%s after fence %d", holder(ev), fence)
				default:
					if ev.Leader != nil {
						fence = ev.Leader.Fence
					}
					f.last = holder(ev)
				}
				f.mu.Unlock()
			}
		}
	}()
	return f
}

func (f *follower) state() (last string, failures int, reorder string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last, f.failures, f.reorder
}

// waitAll waits until every follower's last state is want[i] and, when
// mustFail, each has seen its watch fail; it reports the first laggard.
func waitAll(t *testing.T, fs []*follower, want []string, mustFail bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		bad := ""
		for i, f := range fs {
			last, failures, reorder := f.state()
			if reorder != "" {
				t.Fatalf("election %d: event out of order: %s", i, reorder)
			}
			if last != want[i] || (mustFail && failures == 0) {
				bad = fmt.Sprintf("election %d shows %s after %d failed watches, want %s", i, last, failures, want[i])
				break
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, bad)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSharedWatchCut: many elections followed through one Backend's shared
// watch, cut from etcd by a partition while their holders change and the
// revisions it would resume from are compacted. When the link heals the
// shared watch cannot resume: every election's watch fails with an error
// wrapping ErrUnavailable, is watched again, and shows the state it missed;
// later changes reach every one of them. A claim of the cut Backend's
// session deleted by someone else during the cut is reported lost by its
// next Renew.
func TestSharedWatchCut(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	raw := rawClient(t, srv.addr)
	proxy, err := faultproxy.New(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	cut := newBackend(t, etcd.Config{Endpoints: []string{proxy.Addr()}, DialTimeout: 10 * time.Second, Prefix: "cut"})
	writer := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}, Prefix: "cut"})
	ws := openSession(t, writer, 60*time.Second)
	cs := openSession(t, cut, 60*time.Second)
	mine := claim(t, cs, "held-by-cut", "c")

	const n = 100
	fctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	fs := make([]*follower, n)
	want := make([]string, n)
	held := make([]election.Claim, n)
	for i := range n {
		fs[i] = follow(fctx, &wg, cut, fmt.Sprintf("e%03d", i))
		want[i] = "vacant"
	}
	for i := range n / 2 {
		held[i] = claim(t, ws, fmt.Sprintf("e%03d", i), "w")
		want[i] = fmt.Sprintf("w@%d", held[i].Fence)
	}
	waitAll(t, fs, want, false, 30*time.Second)

	if err := proxy.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if i < n/2 {
			if err := ws.Release(ctx, held[i]); err != nil {
				t.Fatal(err)
			}
			want[i] = "vacant"
		} else {
			held[i] = claim(t, ws, fmt.Sprintf("e%03d", i), "w")
			want[i] = fmt.Sprintf("w@%d", held[i].Fence)
		}
	}
	entries, err := raw.Get(ctx, "cut/held-by-cut%00", clientv3.WithPrefix())
	if err != nil || len(entries.Kvs) != 1 {
		t.Fatalf("entry of held-by-cut: %v", err)
	}
	if _, err := raw.Delete(ctx, string(entries.Kvs[0].Key)); err != nil {
		t.Fatal(err)
	}
	rev, err := raw.Get(ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Compact(ctx, rev.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// Longer than the client's keep-alive (5s ping, 3s timeout): the
	// connection is given up, and the watch must resume on a new one
	// from a compacted revision.
	time.Sleep(14 * time.Second)
	if err := proxy.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	waitAll(t, fs, want, true, 60*time.Second)

	for i := n / 2; i < n; i++ {
		if err := ws.Release(ctx, held[i]); err != nil {
			t.Fatal(err)
		}
		want[i] = "vacant"
	}
	waitAll(t, fs, want, true, 30*time.Second)

	err = cs.Renew(ctx, []election.Claim{mine})
	var notOwner *election.NotOwnerError
	if !errors.As(err, &notOwner) || len(notOwner.Claims) != 1 {
		t.Fatalf("Renew of a claim deleted during the cut = %v, want NotOwnerError", err)
	}
}

// TestWatchSharesOneWatch: watching many elections through one Backend
// adds no goroutine per election (one etcd watch serves them all), and
// every watch still gets its own first state and its own changes.
func TestWatchSharesOneWatch(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := watchCtx(t)
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}})
	s := openSession(t, b, 2*time.Second)
	if _, err := b.Watch(ctx, "warm-up"); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	const n = 500
	chans := make([]<-chan election.WatchEvent, n)
	for i := range n {
		var err error
		if chans[i], err = b.Watch(ctx, fmt.Sprintf("w%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if grew := runtime.NumGoroutine() - before; grew > 10 {
		t.Fatalf("%d watches added %d goroutines, want none per watch", n, grew)
	}
	for i := range n {
		if ev := nextEvent(t, chans[i]); ev.Err != nil || ev.Leader != nil {
			t.Fatalf("first event of w%03d = %s, want vacant", i, holder(ev))
		}
	}
	c := claim(t, s, "w123", "a")
	if ev := nextEvent(t, chans[123]); ev.Leader == nil || ev.Leader.Fence != c.Fence {
		t.Fatalf("w123 after its claim: %s", holder(ev))
	}
	for _, i := range []int{122, 124} {
		select {
		case ev := <-chans[i]:
			t.Fatalf("w%03d got an event for another election's claim: %s", i, holder(ev))
		default:
		}
	}
}

// TestWatchCoalesces: a reader that does not keep up is never shown an
// older state after a newer one, and reaches the newest; the shared watch
// never waits for it (the other election's reader, which keeps up, sees
// every change).
func TestWatchCoalesces(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := watchCtx(t)
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}})
	s := openSession(t, b, 2*time.Second)
	slow, err := b.Watch(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	fast, err := b.Watch(ctx, "fast")
	if err != nil {
		t.Fatal(err)
	}
	nextEvent(t, fast)
	var last election.Claim
	for i := range 20 {
		last = claim(t, s, "slow", fmt.Sprintf("n%d", i))
		f := claim(t, s, "fast", "f")
		if ev := nextEvent(t, fast); ev.Leader == nil || ev.Leader.Fence != f.Fence {
			t.Fatalf("fast reader: %s, want f@%d", holder(ev), f.Fence)
		}
		if err := s.Release(ctx, f); err != nil {
			t.Fatal(err)
		}
		if ev := nextEvent(t, fast); ev.Leader != nil {
			t.Fatalf("fast reader: %s, want vacant", holder(ev))
		}
		if i < 19 {
			if err := s.Release(ctx, last); err != nil {
				t.Fatal(err)
			}
		}
	}
	var fence uint64
	for {
		ev := nextEvent(t, slow)
		if ev.Err != nil {
			t.Fatal(ev.Err)
		}
		if ev.Leader == nil {
			continue
		}
		if ev.Leader.Fence < fence {
			t.Fatalf("slow reader: fence %d after %d", ev.Leader.Fence, fence)
		}
		fence = ev.Leader.Fence
		if fence == last.Fence {
			return
		}
	}
}

// TestNotify: Notify (the core's optional election.Notifier) calls fn with
// what Watch would send, one call at a time, the first before it returns;
// nothing after stop, not even a change made after Notify's context ended
// before stop; after the Backend closes, one error
// event wrapping ErrUnavailable and nothing more.
func TestNotify(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	b, err := etcd.New(etcd.Config{Endpoints: []string{srv.addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := openSession(t, b, 2*time.Second)
	type rec struct {
		mu      sync.Mutex
		events  []string
		inCall  bool
		overlap bool
	}
	notify := func(ctx context.Context, name string) (*rec, func()) {
		r := &rec{}
		fn := func(ev election.WatchEvent) {
			r.mu.Lock()
			if r.inCall {
				r.overlap = true
			}
			r.inCall = true
			r.events = append(r.events, holder(ev))
			r.inCall = false
			r.mu.Unlock()
		}
		stop, err := b.Notify(ctx, name, fn)
		if err != nil {
			t.Fatal(err)
		}
		return r, stop
	}
	seen := func(r *rec) []string {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.overlap {
			t.Fatal("calls of fn overlapped")
		}
		return append([]string(nil), r.events...)
	}
	waitFor := func(r *rec, n int) []string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for len(seen(r)) < n {
			if time.Now().After(deadline) {
				t.Fatalf("after 30s fn got %v, want %d events", seen(r), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return seen(r)
	}

	// ctx bounds Notify's set-up only: short's ends at once, and short
	// follows the election until stop.
	ended, end := context.WithCancel(testCtx(t))
	short, stopShort := notify(ended, "n")
	end()
	long, _ := notify(testCtx(t), "n")
	if got := seen(short); len(got) != 1 || got[0] != "vacant" {
		t.Fatalf("events when Notify returned: %v, want [vacant]", got)
	}
	c := claim(t, s, "n", "a")
	want := fmt.Sprintf("a@%d", c.Fence)
	if got := waitFor(short, 2); got[1] != want {
		t.Fatalf("after the claim: %v, want %s", got, want)
	}
	stopShort()
	waitFor(long, 2)
	if err := s.Release(testCtx(t), c); err != nil {
		t.Fatal(err)
	}
	if got := waitFor(long, 3); got[2] != "vacant" {
		t.Fatalf("after the release: %v", got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	got := waitFor(long, 4)
	if !strings.HasPrefix(got[3], "error: ") || !strings.Contains(got[3], election.ErrUnavailable.Error()) {
		t.Fatalf("after Close: %v, want an error event", got)
	}
	time.Sleep(200 * time.Millisecond) // a later call would have come by now
	if got := seen(short); len(got) != 2 {
		t.Fatalf("fn called after stop: %v", got)
	}
	if got := seen(long); len(got) != 4 {
		t.Fatalf("fn called after the error event: %v", got)
	}
}
