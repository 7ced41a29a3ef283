// Package eventrec records election events so that a test can wait for one
// instead of sleeping.
package eventrec

import (
	"sync"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// Recorder collects events from an election.Config.OnEvent hook. It is
// safe for concurrent use; Record never blocks.
type Recorder struct {
	mu     sync.Mutex
	seen   []election.Event
	notify chan struct{}
}

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{notify: make(chan struct{}, 1)} }

// Record is the OnEvent hook.
func (r *Recorder) Record(ev election.Event) {
	r.mu.Lock()
	r.seen = append(r.seen, ev)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// Wait returns once an event of kind for candidate ("" for session-wide
// events) has been recorded, and fails t if none is within 10 seconds.
func (r *Recorder) Wait(t testing.TB, kind election.EventKind, candidate string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		for _, ev := range r.seen {
			if ev.Kind == kind && ev.Candidate == candidate {
				r.mu.Unlock()
				return
			}
		}
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-timeout:
			t.Fatalf("no %v event for %q within 10s", kind, candidate)
		}
	}
}

// Events returns a copy of every event recorded so far, in the order
// recorded.
func (r *Recorder) Events() []election.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]election.Event(nil), r.seen...)
}
