package redis

import (
	"context"
	"fmt"
	"sync"

	"github.com/electionkit/election"
)

// watcher delivers one Watch's events. The hub offers states as they
// arrive and never blocks on a slow reader: a newer state replaces one not
// yet delivered (coalescing), and states older than the newest offered
// (an announcement read after the initial read saw its effect) are dropped,
// so events are never reordered.
type watcher struct {
	name, channel string
	out           chan election.WatchEvent
	notify        chan struct{} // capacity 1: "pending changed"

	mu      sync.Mutex
	pending *election.WatchEvent // newest undelivered event
	seen    bool                 // some state was offered
	version uint64               // version of the newest state offered
	final   bool                 // pending (or the last delivered) is the error event
}

func newWatcher(name, channel string) *watcher {
	return &watcher{
		name:    name,
		channel: channel,
		out:     make(chan election.WatchEvent),
		notify:  make(chan struct{}, 1),
	}
}

// offer queues ev unless a state at least as new was offered before.
func (w *watcher) offer(ev election.WatchEvent, version uint64) {
	w.mu.Lock()
	if w.final || (w.seen && version <= w.version) {
		w.mu.Unlock()
		return
	}
	w.seen, w.version = true, version
	w.pending = &ev
	w.mu.Unlock()
	w.poke()
}

// fail queues the last event, an error wrapping [election.ErrUnavailable]
// and cause, replacing any undelivered state.
func (w *watcher) fail(cause error) {
	w.mu.Lock()
	if w.final {
		w.mu.Unlock()
		return
	}
	w.final = true
	w.pending = &election.WatchEvent{Err: w.failure(cause)}
	w.mu.Unlock()
	w.poke()
}

func (w *watcher) failure(cause error) error {
	return fmt.Errorf("redis: watch %q: %w: %w", w.name, election.ErrUnavailable, cause)
}

func (w *watcher) poke() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// take returns the pending event, if any, and whether it is the last.
func (w *watcher) take() (ev election.WatchEvent, last, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pending == nil {
		return election.WatchEvent{}, false, false
	}
	ev, w.pending = *w.pending, nil
	return ev, w.final, true
}

// run delivers events until ctx ends, the error event is delivered or the
// Backend closes (then it offers the error without waiting). It closes out
// and calls done on return.
func (w *watcher) run(ctx context.Context, closing <-chan struct{}, done func()) {
	defer done()
	defer close(w.out)
	for {
		ev, last, ok := w.take()
		if !ok {
			select {
			case <-w.notify:
				continue
			case <-ctx.Done():
				return
			case <-closing:
				w.lastWords()
				return
			}
		}
		for sent := false; !sent; {
			select {
			case w.out <- ev:
				sent = true
			case <-w.notify:
				if newer, newerLast, ok := w.take(); ok {
					ev, last = newer, newerLast
				}
			case <-ctx.Done():
				return
			case <-closing:
				w.lastWords()
				return
			}
		}
		if last {
			return
		}
	}
}

// lastWords hands a waiting reader the error event of a closed Backend.
func (w *watcher) lastWords() {
	select {
	case w.out <- election.WatchEvent{Err: w.failure(errClosed)}:
	default:
	}
}
