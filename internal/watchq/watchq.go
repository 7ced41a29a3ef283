// Package watchq is the watcher of the backends whose watches share one
// subscription per prefix (Redis, Postgres): one Watch (a channel) or one
// Notify (a function), with no goroutine, that coalesces states and never
// reorders them.
package watchq

import (
	"fmt"
	"sync"

	"github.com/electionkit/election"
)

// Watcher is one Watch (a channel) or one Notify (a function). It has no
// goroutine. The hub hands it states under the hub's lock: a Watch's
// one-slot channel buffer holds the newest undelivered state (a newer one
// replaces it: coalescing); a Notify's newest undelivered state waits in
// pending until flush, which the goroutine that queued it calls once it
// holds no lock of the Backend. States older than the newest offered are
// dropped, so events are never reordered.
type Watcher struct {
	Name  string
	Out   chan election.WatchEvent  // Watch
	store string                    // the backend's name, in errors
	fn    func(election.WatchEvent) // Notify

	mu      sync.Mutex
	seen    bool   // some state was queued
	version uint64 // version of the newest state queued
	done    bool   // no more states: failed, or closed
	closed  bool   // Close: nothing more reaches fn, not even a failure
	pending *election.WatchEvent

	calling sync.Mutex // Notify: calls of fn never overlap
}

// New returns the watcher of a Watch of name; store names the backend in
// its errors.
func New(store, name string) *Watcher {
	return &Watcher{store: store, Name: name, Out: make(chan election.WatchEvent, 1)}
}

// NewNotify returns the watcher of a Notify of name.
func NewNotify(store, name string, fn func(election.WatchEvent)) *Watcher {
	return &Watcher{store: store, Name: name, fn: fn}
}

// Deliver queues ev unless a state at least as new was queued before. It
// reports whether the watcher must be flushed.
func (w *Watcher) Deliver(ev election.WatchEvent, version uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || (w.seen && version <= w.version) {
		return false
	}
	w.seen, w.version = true, version
	if w.Out != nil {
		w.replace(ev)
		return false
	}
	w.pending = &ev
	return true
}

// replace puts ev in the buffer, dropping an undelivered event. Only
// callers holding w.mu send, so after the drain the send cannot block.
func (w *Watcher) replace(ev election.WatchEvent) {
	select {
	case <-w.Out:
	default:
	}
	w.Out <- ev
}

// Fail queues the last event, an error wrapping [election.ErrUnavailable]
// and cause, replacing any undelivered state, and closes a Watch's
// channel. It reports whether the watcher must be flushed.
func (w *Watcher) Fail(cause error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return false
	}
	w.done = true
	ev := election.WatchEvent{Err: fmt.Errorf("%s: watch %q: %w: %w", w.store, w.Name, election.ErrUnavailable, cause)}
	if w.Out != nil {
		w.replace(ev)
		close(w.Out)
		return false
	}
	w.pending = &ev
	return true
}

// Close ends the watch: Watch's context ended, or Notify's stop. A
// Watch's channel closes; a Notify's function is not called again, except
// by a flush already under way. Close never waits, so a Notify's function
// may call it.
func (w *Watcher) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.done = true
		if w.Out != nil {
			close(w.Out)
		}
	}
	w.closed, w.pending = true, nil
}

// Flush calls a Notify's function with its pending state, if any and if
// the watcher is not closed. The caller holds no lock of the backend.
func (w *Watcher) Flush() {
	w.calling.Lock()
	defer w.calling.Unlock()
	w.mu.Lock()
	ev := w.pending
	w.pending = nil
	closed := w.closed
	w.mu.Unlock()
	if ev == nil || closed {
		return
	}
	w.fn(*ev)
}
