package etcd

import (
	"context"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/electionkit/election"
)

// Watch streams the holder of election name from the Backend's one shared
// watch of the prefix (see hub): no etcd watch and no goroutine per name.
//
// It registers the name with the shared watch, then reads the election's
// entries; the state read is the first event. Every event of the shared
// watch for the name is kept from registration on, and those after the
// read's revision are applied on top of it, so no change between the read
// and the watch is missed and none is applied twice. After the first
// event, one event per change of holder (the entry with the lowest create
// revision): one per new term and one per vacancy, in revision order;
// entries joining or leaving the line behind the holder send nothing. The
// channel holds one event: a reader that falls behind gets the newest
// state, never an older one after a newer one. An entry that is not an
// election record holds the election for an unknown writer: the event's
// Leader has an empty ID and the entry's create revision as its fence.
//
// The shared watch requires an etcd leader: a member cut off from the
// quorum ends it instead of going silent. On any failure (no leader,
// compaction, [Backend.Close]) every name watched through it gets one
// event whose Err wraps election.ErrUnavailable and the cause, and its
// channel is closed; the caller watches again. When ctx ends the channel
// is closed.
//
// Errors: election.ErrUnavailable when the shared watch cannot be
// established within the dial timeout or the initial read fails.
func (b *Backend) Watch(ctx context.Context, name string) (<-chan election.WatchEvent, error) {
	w := &nameWatch{name: name, esc: nameEscaper.Replace(name), out: make(chan election.WatchEvent, 1)}
	if err := b.watch(ctx, w); err != nil {
		return nil, err
	}
	h := b.hub
	stop := context.AfterFunc(ctx, func() { h.remove(w) })
	h.mu.Lock()
	if w.closed {
		stop() // failed already: the registration is not needed
	} else {
		w.stop = stop
	}
	h.mu.Unlock()
	return w.out, nil
}

var _ election.Notifier = (*Backend)(nil)

// Notify is [Backend.Watch] with a function in place of a channel ([election.Notifier]): fn gets the events Watch would send,
// in the same order, one call at a time, never with a lock of the Backend
// held, so that a watched election costs no goroutine at all. The core
// uses it in place of Watch. The first
// call, with the initial state, happens before Notify returns. If the
// shared watch fails, fn gets one event with Err set (wrapping
// election.ErrUnavailable) and no more. ctx bounds the set-up only; after
// stop fn is not called again once a call in progress returns, and the
// Backend keeps nothing of the watch.
//
// Errors: as Watch's.
func (b *Backend) Notify(ctx context.Context, name string, fn func(election.WatchEvent)) (stop func(), err error) {
	w := &nameWatch{name: name, esc: nameEscaper.Replace(name), fn: fn}
	if err := b.watch(ctx, w); err != nil {
		return nil, err
	}
	h := b.hub
	return func() { h.remove(w) }, nil
}

// watch registers w with the shared watch, reads its election and sends
// the first event (see Watch).
func (b *Backend) watch(ctx context.Context, w *nameWatch) error {
	name := w.name
	if err := b.errIfClosed("watch", name); err != nil {
		return err
	}
	h := b.hub
	h.start()
	wait, cancel := context.WithTimeout(ctx, b.dialTimeout)
	epoch, err := h.awaitEstablished(wait)
	cancel()
	if err != nil {
		if ctx.Err() == nil && wait.Err() != nil {
			err = fmt.Errorf("shared watch not established within %v", b.dialTimeout)
		}
		return storeError("watch", name, err)
	}
	if !h.add(w, epoch) {
		return storeError("watch", name, h.errAfter(epoch))
	}
	resp, err := b.client.Get(ctx, b.rangeOf(name), clientv3.WithPrefix())
	if err != nil {
		h.remove(w)
		return storeError("watch", name, err)
	}
	if !h.ready(w, resp) {
		return storeError("watch", name, h.errAfter(epoch))
	}
	return nil
}

// nameWatch is one caller of [Backend.Watch]: the entries of its election
// as of the last event applied, and the channel it reads. Every field is
// guarded by the hub's mutex.
type nameWatch struct {
	name string
	esc  string
	// out is Watch's channel; nil for Notify, whose fn gets the events
	// in queue, delivered by whichever goroutine finds delivering false.
	out        chan election.WatchEvent
	fn         func(election.WatchEvent)
	queue      []election.WatchEvent
	delivering bool
	// ended is set when the watch is stopped (Watch's context ended, or
	// Notify's stop): fn is not called again.
	ended bool

	// line holds the election's entries.
	line []*mvccpb.KeyValue
	// head is the holder last sent (nil: vacant).
	head *mvccpb.KeyValue
	// readRev is the revision of the initial read; 0 until it is applied,
	// and until then events are kept in pending.
	readRev int64
	pending []*clientv3.Event
	dirty   bool
	// closed is set when w is unregistered: its channel is closed, and
	// fn gets nothing beyond the events already queued.
	closed bool
	// stop ends Watch's tie to its context.
	stop func() bool
}

// add registers w with the hub's watch of epoch; false if that watch has
// failed since.
func (h *hub) add(w *nameWatch, epoch uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.epoch != epoch || !h.established {
		return false
	}
	h.names[w.esc] = append(h.names[w.esc], w)
	return true
}

// errAfter returns why the watch of epoch failed.
func (h *hub) errAfter(epoch uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastErr == nil {
		return errBackendClosed
	}
	return h.lastErr
}

// ready applies the initial read to w, sends its state, then applies the
// events kept since registration that are newer than the read. It returns
// false if the shared watch failed meanwhile (w is then closed).
func (h *hub) ready(w *nameWatch, resp *clientv3.GetResponse) bool {
	h.mu.Lock()
	defer h.deliver()
	defer h.mu.Unlock()
	if w.closed {
		return false
	}
	w.line = append(w.line[:0], resp.Kvs...)
	w.readRev = resp.Header.Revision
	w.head = headOf(w.line)
	w.send(h, event(w.name, w.head))
	pending := w.pending
	w.pending = nil
	for i, ev := range pending {
		w.take(ev)
		if i+1 < len(pending) && pending[i+1].Kv.ModRevision == ev.Kv.ModRevision {
			continue
		}
		w.publish(h)
	}
	return true
}

// remove unregisters w and closes its channel.
func (h *hub) remove(w *nameWatch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.ended = true
	if w.closed {
		return
	}
	ws := h.names[w.esc]
	if i := slices.Index(ws, w); i >= 0 {
		ws = slices.Delete(ws, i, i+1)
		if len(ws) == 0 {
			delete(h.names, w.esc)
		} else {
			h.names[w.esc] = ws
		}
	}
	w.closed = true
	if w.out != nil {
		close(w.out)
	}
}

// take applies one event of the shared watch to w's entries, or keeps it
// until the initial read has been applied. It reports whether the entries
// changed.
func (w *nameWatch) take(ev *clientv3.Event) bool {
	if w.readRev == 0 {
		w.pending = append(w.pending, ev)
		return false
	}
	if ev.Kv.ModRevision <= w.readRev {
		return false // already in the initial read
	}
	i := slices.IndexFunc(w.line, func(kv *mvccpb.KeyValue) bool { return string(kv.Key) == string(ev.Kv.Key) })
	switch {
	case ev.Type == mvccpb.DELETE && i >= 0:
		w.line = slices.Delete(w.line, i, i+1)
	case ev.Type == mvccpb.DELETE:
		return false
	case i >= 0:
		w.line[i] = ev.Kv
	default:
		w.line = append(w.line, ev.Kv)
	}
	return true
}

// publish sends w's holder if it changed since the last event sent.
func (w *nameWatch) publish(h *hub) {
	if w.readRev == 0 || w.closed {
		return
	}
	next := headOf(w.line)
	if sameEntry(next, w.head) {
		if next != nil {
			w.head = next // an overwrite of the holder keeps its term
		}
		return
	}
	w.head = next
	w.send(h, event(w.name, next))
}

// send puts ev in w's channel without ever blocking the shared watch: an
// unread older state is replaced by ev. The hub's mutex makes this the
// only sender. For Notify, ev is queued for fn, and w for delivery once
// the hub's mutex is released (hub.deliver).
func (w *nameWatch) send(h *hub, ev election.WatchEvent) {
	if w.out == nil {
		w.queue = append(w.queue, ev)
		if !w.delivering {
			w.delivering = true
			h.pending = append(h.pending, w)
		}
		return
	}
	for {
		select {
		case w.out <- ev:
			return
		default:
		}
		select {
		case <-w.out:
		default:
		}
	}
}

// fail ends w with an error event and closes its channel.
func (w *nameWatch) fail(h *hub, cause error) {
	if w.closed {
		return
	}
	w.send(h, election.WatchEvent{Err: storeError("watch", w.name, cause)})
	w.closed = true
	if w.out != nil {
		close(w.out)
	}
	if w.stop != nil {
		w.stop()
	}
}

// headOf returns the entry with the lowest create revision: the holder. It
// returns nil when there is none.
func headOf(line []*mvccpb.KeyValue) *mvccpb.KeyValue {
	var h *mvccpb.KeyValue
	for _, kv := range line {
		if h == nil || kv.CreateRevision < h.CreateRevision {
			h = kv
		}
	}
	return h
}

func sameEntry(a, b *mvccpb.KeyValue) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.CreateRevision == b.CreateRevision
}

// event describes the holder kv (nil: vacant). An entry that is not an
// election record is held by an unknown writer (empty ID), never vacant.
func event(name string, kv *mvccpb.KeyValue) election.WatchEvent {
	if kv == nil {
		return election.WatchEvent{}
	}
	l, _ := leaderOf(name, kv)
	return election.WatchEvent{Leader: &l}
}

// deliver calls fn for the events queued for Notify watchers, outside the
// hub's mutex. The goroutine that queued a watcher's first undelivered
// event delivers all of them, in order, so calls for one watch never
// overlap; one that was stopped gets nothing more.
func (h *hub) deliver() {
	h.mu.Lock()
	ws := h.pending
	h.pending = nil
	h.mu.Unlock()
	for _, w := range ws {
		for {
			h.mu.Lock()
			if w.ended || len(w.queue) == 0 {
				w.queue, w.delivering = nil, false
				h.mu.Unlock()
				break
			}
			ev := w.queue[0]
			w.queue = w.queue[1:]
			h.mu.Unlock()
			w.fn(ev)
		}
	}
}
