package redis

import (
	"fmt"
	"sync"

	"github.com/electionkit/election"
)

// watcher is one Watch's channel. It has no goroutine: the hub hands it
// states under the watcher's lock, and the channel's one-slot buffer holds
// the newest undelivered one (a newer state replaces it: coalescing).
// States older than the newest offered are dropped, so events are never
// reordered.
type watcher struct {
	name string
	out  chan election.WatchEvent

	mu      sync.Mutex
	seen    bool   // some state was delivered
	version uint64 // version of the newest state delivered
	done    bool   // out is closed
}

func newWatcher(name string) *watcher {
	return &watcher{name: name, out: make(chan election.WatchEvent, 1)}
}

// deliver queues ev unless a state at least as new was queued before.
func (w *watcher) deliver(ev election.WatchEvent, version uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || (w.seen && version <= w.version) {
		return
	}
	w.seen, w.version = true, version
	w.replace(ev)
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
// and cause, and closes the channel.
func (w *watcher) fail(cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.replace(election.WatchEvent{Err: fmt.Errorf("redis: watch %q: %w: %w", w.name, election.ErrUnavailable, cause)})
	w.done = true
	close(w.out)
}

// close closes the channel: the watch's context ended.
func (w *watcher) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.done = true
		close(w.out)
	}
}
