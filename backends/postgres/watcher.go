package postgres

import (
	"context"
	"fmt"
	"sync"

	"github.com/electionkit/election"
)

// watcher is one Watch (a channel) or one Notify (a function). It has no
// goroutine. The hub hands it states under the hub's lock: a Watch's
// one-slot channel buffer holds the newest undelivered state (a newer one
// replaces it); a Notify's newest undelivered state waits in pending until
// flush, which the goroutine that queued it calls once it holds no lock of
// the Backend. States older than the newest offered are dropped, so events
// are never reordered.
type watcher struct {
	name string
	out  chan election.WatchEvent  // Watch
	fn   func(election.WatchEvent) // Notify
	ctx  context.Context           // Notify: no call once it has ended

	mu      sync.Mutex
	seen    bool
	version uint64
	done    bool
	pending *election.WatchEvent

	calling sync.Mutex // Notify: calls of fn never overlap
}

func newWatcher(name string) *watcher {
	return &watcher{name: name, out: make(chan election.WatchEvent, 1)}
}

func newNotifyWatcher(ctx context.Context, name string, fn func(election.WatchEvent)) *watcher {
	return &watcher{name: name, fn: fn, ctx: ctx}
}

// deliver queues ev unless a newer state was queued before. It reports
// whether the watcher must be flushed.
func (w *watcher) deliver(ev election.WatchEvent, version uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || (w.seen && version <= w.version) {
		return false
	}
	w.seen, w.version = true, version
	if w.out != nil {
		w.replace(ev)
		return false
	}
	w.pending = &ev
	return true
}

// replace puts ev in the buffer, dropping an undelivered event. Only
// callers holding w.mu send, so after the drain the send cannot block.
func (w *watcher) replace(ev election.WatchEvent) {
	select {
	case <-w.out:
	default:
	}
	w.out <- ev
}

// fail queues the last event, an error wrapping [election.ErrUnavailable]
// and cause, and closes a Watch's channel. It reports whether the watcher
// must be flushed.
func (w *watcher) fail(cause error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return false
	}
	w.done = true
	ev := election.WatchEvent{Err: fmt.Errorf("postgres: watch %q: %w: %w", w.name, election.ErrUnavailable, cause)}
	if w.out != nil {
		w.replace(ev)
		close(w.out)
		return false
	}
	w.pending = &ev
	return true
}

// close ends the watch: its context ended. A Watch's channel closes; a
// Notify's function is not called again once a call in progress returns.
func (w *watcher) close() {
	w.mu.Lock()
	if !w.done {
		w.done = true
		if w.out != nil {
			close(w.out)
		}
	}
	w.pending = nil
	w.mu.Unlock()
	if w.fn != nil {
		w.calling.Lock()
		w.calling.Unlock()
	}
}

// flush calls a Notify's function with its pending state, if any and if
// its context has not ended. The caller holds no lock of the Backend.
func (w *watcher) flush() {
	w.calling.Lock()
	defer w.calling.Unlock()
	w.mu.Lock()
	ev := w.pending
	w.pending = nil
	w.mu.Unlock()
	if ev == nil || w.ctx.Err() != nil {
		return
	}
	w.fn(*ev)
}
