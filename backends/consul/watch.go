package consul

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

// minQueryGap and perKeyGap space the queries of a bucket: each starts at
// least max(minQueryGap, perKeyGap × the keys its predecessor listed) after
// the one before. Consul's docs ask clients to rate-limit blocking queries,
// and each answer lists the whole bucket: without a gap, a burst of claims
// (10,000 candidates starting) makes every bucket answer once per claim in
// it, O(n²/32) keys in all. With it, a bucket lists at most 1,000 keys a
// second and 20 answers, so all buckets together cost the agent at most
// 32,000 keys a second, whatever n. A query that waited for a change
// started long before, so the first change after a quiet spell (the
// release of a handoff) is reported at once; one that lands during the gap
// is reported by the next query, which then returns immediately.
const (
	minQueryGap = 50 * time.Millisecond
	perKeyGap   = time.Millisecond
)

// Watch streams the holder of the election name. The watches of a Backend
// share one blocking query per bucket in use (see docs/record-format.md), so
// a process makes at most 32 of them whatever the number of elections it
// follows, and no goroutine runs per watched name: the bucket's query lists
// the bucket on every change in it, and each watched name's state is
// handed to its channels.
//
// The first event is the state when the watch starts: Watch reads the key
// once (one GET, before it returns), since the bucket's query may have been
// sent long before. After it, a release, claim or session expiry (Consul
// deletes the key) is reported when the bucket's query returns. Reads are
// ordered by their Raft indexes, so an answer older than what a name has
// shown is never shown after it. A receiver that
// falls behind never holds up the others: its channel keeps only the newest
// state, older ones are coalesced into it. When Consul's index goes
// backwards (a server restored or rebuilt) the bucket's query starts over
// from index 0, as Consul's docs prescribe.
//
// The channel is closed when ctx ends or the backend is closed. If the
// bucket's query fails, or does not return within about WatchWait × 1.3 +
// 1s (a dead link), every watch of the bucket gets one event with Err
// (wrapping [election.ErrUnavailable], or [election.ErrInvalidArgument] for
// a rejected token, or one that may not read every key of the bucket) and is
// closed; the next Watch starts the query again.
func (b *Backend) Watch(ctx context.Context, name string) (<-chan election.WatchEvent, error) {
	if err := b.check(name); err != nil {
		return nil, err
	}
	h := &b.watches
	w, err := h.join(name, nil)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	// If ctx has already ended, the function runs at once, in its own
	// goroutine, and waits for h.mu.
	w.stop = context.AfterFunc(ctx, func() { h.leave(w) })
	h.mu.Unlock()
	if err := h.readFirst(ctx, w); err != nil {
		return nil, err
	}
	return w.ch, nil
}

// Notify implements [election.Notifier]: [Backend.Watch] with a function in
// place of a channel, which the core uses instead of Watch. The same shared
// queries hand over the same events in the same order, with not even a
// channel per watched name. fn is called from the bucket's query goroutine
// (or, for the first event and a failed first read, from Notify itself),
// never with the backend's lock held, never twice at once for one watch; if
// it has not taken an event before a newer one arrives, it gets only the
// newer one. After a failure, fn gets one event with Err and no more. ctx
// bounds the set-up only: after stop fn is not called again (but by a call
// already under way), and the backend forgets the watch.
//
// Errors: as Watch's (a bad name, a closed backend).
func (b *Backend) Notify(ctx context.Context, name string, fn func(election.WatchEvent)) (stop func(), err error) {
	if err := b.check(name); err != nil {
		return nil, err
	}
	h := &b.watches
	w, err := h.join(name, fn)
	if err != nil {
		return nil, err
	}
	if err := h.readFirst(ctx, w); err != nil {
		return nil, err
	}
	return func() { h.leave(w) }, nil
}

// hub is a Backend's shared watches: one blocking query per bucket in use,
// demultiplexed to per-name channels and functions. One mutex guards it
// all; nothing blocks while holding it, and no function of Notify is called
// with it held.
type hub struct {
	b *Backend

	mu      sync.Mutex
	closed  bool
	buckets [bucketCount]*bucket
	loops   sync.WaitGroup
	// due are the Notify watchers with an event to hand over that no
	// goroutine is handing over yet; unlock runs them.
	due []*watcher
}

// bucket is one bucket's blocking query and the names watched in it.
type bucket struct {
	id     int
	prefix string // bucketPrefix(id), with its trailing '/'
	cancel context.CancelFunc
	// dead is set when the bucket's query has stopped or must stop: no
	// name is watched any more, the query failed, or the backend closed.
	dead     bool
	entries  map[string]*entry // by escaped name
	watchers int
	gen      uint64 // the number of answers applied
}

// entry is one watched name: its newest known state and its watchers.
type entry struct {
	name     string
	state    keyState
	listed   uint64 // gen of the last answer that listed the key
	watchers []*watcher
}

// keyState is a key as last read. Raft indexes order the reads: a present
// key's state holds from its ModifyIndex on; an absent key's state is
// known to hold at index (the bucket's or the KV table's index of the read
// that found it absent).
type keyState struct {
	known   bool
	present bool
	index   uint64
	session string
	view    keyView
}

// watcher is one watch: a channel Watch handed out, or a function given
// to Notify.
type watcher struct {
	e  *entry
	bk *bucket
	ch chan election.WatchEvent // Watch: capacity 1, the newest undelivered state

	fn func(election.WatchEvent) // Notify
	// pending is the newest event not yet handed to fn; running says a
	// goroutine is handing events to fn; final says pending is the
	// failure, handed over although the watch is closed.
	pending             election.WatchEvent
	hasPending, running bool
	final               bool

	primed bool // its own read is in: events may flow
	sent   bool
	last   watchState // the state last handed over
	closed bool
	stop   func() bool // Watch: unregisters the context.AfterFunc that closes it
}

// watchState identifies a term in the events: the holder's session and the
// key's ModifyIndex; every vacancy is the same state.
type watchState struct {
	held    bool
	session string
	index   uint64
}

// join registers a watcher of name, a channel or (fn set) a function,
// starting its bucket's query if none runs. The watcher stays silent until
// readFirst.
func (h *hub) join(name string, fn func(election.WatchEvent)) (*watcher, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errClosed
	}
	id := bucketOf(name)
	bk := h.buckets[id]
	if bk == nil {
		bk = &bucket{id: id, prefix: h.b.bucketPrefix(id), entries: map[string]*entry{}}
		var qctx context.Context
		qctx, bk.cancel = context.WithCancel(h.b.life)
		h.buckets[id] = bk
		h.loops.Add(1)
		go h.run(qctx, bk)
	}
	seg := escapeName(name)
	e := bk.entries[seg]
	if e == nil {
		e = &entry{name: name}
		bk.entries[seg] = e
	}
	w := &watcher{e: e, bk: bk}
	if fn != nil {
		w.fn = fn
	} else {
		w.ch = make(chan election.WatchEvent, 1)
	}
	e.watchers = append(e.watchers, w)
	bk.watchers++
	return w, nil
}

// readFirst reads w's key for its first event: the bucket's query may have
// been sent before w joined, so its answer may predate the Watch call. The
// read also fails as it should for a token that may not read the key,
// where a listing would silently leave the key out. A failed read is w's
// one event with Err; if ctx ended first, w is dropped unseen and
// readFirst returns the context's error.
func (h *hub) readFirst(ctx context.Context, w *watcher) error {
	rctx, cancel := context.WithTimeout(ctx, h.b.deadLink())
	p, meta, err := h.b.client.KV().Get(h.b.Key(w.e.name), h.b.query(rctx))
	cancel()
	h.mu.Lock()
	defer h.unlock()
	if w.closed {
		return nil
	}
	if err != nil {
		if ctx.Err() != nil {
			h.drop(w)
			return storeErr(fmt.Sprintf("watch %q", w.e.name), ctx.Err())
		}
		h.push(w, election.WatchEvent{Err: storeErr(fmt.Sprintf("watch %q", w.e.name), err)})
		h.drop(w) // after the push: dropping closes a Watch's channel
		return nil
	}
	if p != nil {
		w.e.offer(true, p.ModifyIndex, p)
	} else {
		w.e.offer(false, meta.LastIndex, nil)
	}
	w.primed = true
	h.deliver(w)
	return nil
}

// leave closes w: Watch's context ended, or Notify's stop.
func (h *hub) leave(w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !w.closed {
		h.drop(w)
	}
}

// drop closes w and forgets it; the bucket's query stops with its last
// watcher.
func (h *hub) drop(w *watcher) {
	end(w)
	e, bk := w.e, w.bk
	for i, o := range e.watchers {
		if o == w {
			e.watchers = append(e.watchers[:i], e.watchers[i+1:]...)
			break
		}
	}
	if len(e.watchers) == 0 && bk.entries[escapeName(e.name)] == e {
		delete(bk.entries, escapeName(e.name))
	}
	if bk.watchers--; bk.watchers == 0 {
		h.retire(bk)
	}
}

// retire stops bk's query; the next Watch of one of its names starts a new
// one.
func (h *hub) retire(bk *bucket) {
	if bk.dead {
		return
	}
	bk.dead = true
	bk.cancel()
	if h.buckets[bk.id] == bk {
		h.buckets[bk.id] = nil
	}
}

// fail ends every watch of bk with an event carrying the query's error,
// then closes them, as the Watch contract asks; the core watches again.
func (h *hub) fail(bk *bucket, err error) {
	h.mu.Lock()
	defer h.unlock()
	if bk.dead {
		return
	}
	h.retire(bk)
	for _, e := range bk.entries {
		for _, w := range e.watchers {
			h.push(w, election.WatchEvent{Err: storeErr(fmt.Sprintf("watch %q (blocking query on %s)", e.name, bk.prefix), err)})
			end(w)
		}
	}
	bk.entries, bk.watchers = nil, 0
}

// close closes every watch for Backend.Close and stops every query. It
// reports false if the hub was already closed.
func (h *hub) close() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.closed = true
	for _, bk := range h.buckets {
		if bk == nil {
			continue
		}
		h.retire(bk)
		for _, e := range bk.entries {
			for _, w := range e.watchers {
				end(w)
			}
		}
		bk.entries, bk.watchers = nil, 0
	}
	return true
}

// end closes w: its channel is closed, its function gets nothing more but
// a failure already pending.
func end(w *watcher) {
	w.closed = true
	if w.stop != nil {
		w.stop()
	}
	if w.ch != nil {
		close(w.ch)
	}
}

// wait waits for every bucket's query goroutine to end.
func (h *hub) wait() { h.loops.Wait() }

// run is bk's query loop: one blocking query at a time on the bucket's
// prefix, until bk is retired or its query fails.
func (h *hub) run(ctx context.Context, bk *bucket) {
	defer h.loops.Done()
	var index uint64
	for {
		started := time.Now()
		pairs, meta, err := h.b.list(ctx, bk.prefix, index)
		if ctx.Err() != nil {
			return
		}
		if err == nil && meta.ResultsFilteredByACLs {
			// Keys the token may not read are left out: they would look
			// vacant.
			err = errFilteredByACLs
		}
		if err != nil {
			h.fail(bk, err)
			return
		}
		h.apply(bk, pairs, meta.LastIndex, meta.LastIndex < index)
		h.noteForeign(bk, pairs)
		index = nextIndex(index, meta.LastIndex)
		if gap := max(minQueryGap, time.Duration(len(pairs))*perKeyGap) - time.Since(started); gap > 0 {
			t := time.NewTimer(gap)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// apply hands an answer of bk's query (the bucket's keys as of index) to
// the watched names. reset says the index went backwards: what was known is
// forgotten.
func (h *hub) apply(bk *bucket, pairs api.KVPairs, index uint64, reset bool) {
	h.mu.Lock()
	defer h.unlock()
	if bk.dead {
		return
	}
	bk.gen++
	if reset {
		for _, e := range bk.entries {
			e.state.known = false
		}
	}
	for _, p := range pairs {
		seg, ok := strings.CutPrefix(p.Key, bk.prefix)
		if !ok {
			continue
		}
		if e := bk.entries[seg]; e != nil {
			e.listed = bk.gen
			e.offer(true, p.ModifyIndex, p)
		}
	}
	for _, e := range bk.entries {
		if e.listed != bk.gen {
			e.offer(false, index, nil)
		}
		for _, w := range e.watchers {
			if w.primed {
				h.deliver(w)
			}
		}
	}
}

// offer merges a read of the key into e's state if it is not older than
// what e knows: present at ModifyIndex index (p is the key), or absent as
// of index. Raft indexes only grow, so a key present at m and absent as of
// a ≥ m was deleted after m, and a key absent as of a and present at m > a
// was written after a.
func (e *entry) offer(present bool, index uint64, p *api.KVPair) {
	s := &e.state
	switch {
	case !s.known:
	case present && index <= s.index:
		return // the same write, or one from before what e knows
	case !present && s.present && index < s.index:
		return // a read from before the key was written
	case !present && !s.present:
		s.index = max(s.index, index)
		return
	}
	*s = keyState{known: true, present: present, index: index}
	if present {
		s.session = p.Session
		s.view = view(e.name, p)
	}
}

// deliver hands w the state of its name if it differs from the last one
// handed over, or if w has had none. It reports whether it did.
func (h *hub) deliver(w *watcher) bool {
	s := w.e.state
	if !s.known {
		return false
	}
	now := watchState{held: s.view.leader != nil}
	if now.held {
		now.session, now.index = s.session, s.index
	}
	if w.sent && now == w.last {
		return false
	}
	ev := election.WatchEvent{}
	if now.held {
		l := *s.view.leader
		ev.Leader = &l
	}
	h.push(w, ev)
	w.sent, w.last = true, now
	return true
}

// push hands ev to w without blocking, replacing the state still waiting
// there: a slow receiver gets the newest state. A channel never blocks: the
// hub's mutex makes this the only sender, and the buffer is emptied first
// if full. A function gets ev when the hub is unlocked.
func (h *hub) push(w *watcher, ev election.WatchEvent) {
	if w.fn != nil {
		w.pending, w.hasPending = ev, true
		w.final = ev.Err != nil
		if !w.running {
			w.running = true
			h.due = append(h.due, w)
		}
		return
	}
	select {
	case w.ch <- ev:
		return
	default:
	}
	select {
	case <-w.ch:
	default:
	}
	w.ch <- ev
}

// unlock releases the hub's mutex, then hands the pending events to the
// functions of the Notify watchers that became due.
func (h *hub) unlock() {
	due := h.due
	h.due = nil
	h.mu.Unlock()
	for _, w := range due {
		h.handOver(w)
	}
}

// handOver calls w's function with its pending events until none is left.
// Only the goroutine that set w.running calls it, so calls never overlap.
func (h *hub) handOver(w *watcher) {
	for {
		h.mu.Lock()
		if !w.hasPending || (w.closed && !w.final) {
			w.running, w.hasPending, w.pending = false, false, election.WatchEvent{}
			h.mu.Unlock()
			return
		}
		ev := w.pending
		w.hasPending, w.pending = false, election.WatchEvent{}
		h.mu.Unlock()
		w.fn(ev)
	}
}

// lostByWatch reports whether the watches show that the claim c, made by
// session sid, is no longer held: its key deleted after the claim, or
// written since by another session or with another token. It reports false
// when the name is not watched or its state predates the claim.
func (h *hub) lostByWatch(c election.Claim, sid string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	bk := h.buckets[bucketOf(c.Name)]
	if bk == nil {
		return false
	}
	e := bk.entries[escapeName(c.Name)]
	if e == nil || !e.state.known {
		return false
	}
	s := e.state
	switch {
	case !s.present:
		return s.index >= c.Fence
	case s.index <= c.Fence:
		return false
	}
	return s.session != sid || s.view.foreign != nil || s.view.token != c.Token
}

// nextIndex applies Consul's rules for the index of the next blocking
// query: start over if the index went backwards, and never block on 0.
func nextIndex(prev, got uint64) uint64 {
	switch {
	case got < prev:
		return 0
	case got == 0:
		return 1
	}
	return got
}

// list lists the keys under prefix, waiting for the prefix's index to pass
// index (0: no wait).
func (b *Backend) list(ctx context.Context, prefix string, index uint64) (api.KVPairs, *api.QueryMeta, error) {
	ctx, cancel := context.WithTimeout(ctx, b.deadLink())
	defer cancel()
	q := b.query(ctx)
	q.WaitIndex, q.WaitTime = index, b.s.watchWait
	return b.client.KV().List(prefix, q)
}

// deadLink is how long a watch's request may take before the link counts
// as dead: Consul answers a blocking query after at most wait + wait/16 of
// jitter, and a plain read at once.
func (b *Backend) deadLink() time.Duration {
	wait := b.s.watchWait
	return wait + wait/16 + wait/4 + time.Second
}
