package conformance

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// histWatcher watches the election on its own node for the whole run,
// watching again whenever a watch ends with an error.
type histWatcher struct {
	r *historyRun
	n *node

	mu   sync.Mutex
	seen []watchSeen
}

func (w *histWatcher) run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		ch, err := w.n.b.Watch(ctx, historyName)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if failures++; failures > 10 {
				w.r.e.t.Errorf("watcher %s: Watch failed %d times, last: %v", w.n.id, failures, err)
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for ev := range ch {
			if ev.Err != nil {
				break // the channel closes next; watch again
			}
			s := watchSeen{at: w.r.now()}
			if ev.Leader != nil {
				s.holder, s.fence = ev.Leader.ID, ev.Leader.Fence
			}
			w.mu.Lock()
			w.seen = append(w.seen, s)
			w.mu.Unlock()
		}
	}
}

func (w *histWatcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

// saw reports whether the watcher was shown the holder with fence.
func (w *histWatcher) saw(fence uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.seen {
		if s.holder != "" && s.fence == fence {
			return true
		}
	}
	return false
}

// watchSeen is one event a watcher received.
type watchSeen struct {
	at     int64  // when it was received, ns since the run started
	holder string // the holder's ID, "" when vacant
	fence  uint64
}

// grant is a claim the store granted, found in a history: taken at once or
// put in line.
type grant struct {
	token string
	call  int64
}

// grantsOf returns the claims history says the store granted, by fence.
func grantsOf(history []porcupine.Operation) map[uint64]grant {
	out := map[uint64]grant{}
	for _, op := range history {
		in, res := op.Input.(histIn), op.Output.(histOut)
		if (in.kind == opClaim || in.kind == opEnqueue) && res.result == resOK {
			out[res.fence] = grant{token: in.token, call: in.call}
		}
	}
	return out
}

// checkWatch returns what is wrong with one watcher's stream of events,
// given the claims granted during the run: every holder it shows must be a
// claim that was granted (taken at once, or in line and then promoted),
// under that claim's ID and not before the claim was asked for; holders
// must follow one another with strictly increasing fences; and a term,
// once followed by a vacancy or another term, must not be shown again. A
// repeat of the last event (a coalesced change, a re-established watch)
// is not a new holder.
func checkWatch(granted map[uint64]grant, stream []watchSeen) []string {
	var (
		problems []string
		last     *watchSeen // the last event with a holder
		previous *watchSeen // the last event
	)
	for i := range stream {
		ev := &stream[i]
		at := time.Duration(ev.at)
		if ev.holder != "" {
			g, ok := granted[ev.fence]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("event %d at %v: holder %s with fence %d, a fence no claim of the run was granted", i, at, ev.holder, ev.fence))
			case g.token != ev.holder:
				problems = append(problems, fmt.Sprintf("event %d at %v: holder %s with fence %d, the fence of %s's claim", i, at, ev.holder, ev.fence, g.token))
			case ev.at < g.call:
				problems = append(problems, fmt.Sprintf("event %d at %v: holder %s, received before its claim was made at %v", i, at, ev.holder, time.Duration(g.call)))
			}
			switch {
			case last == nil:
			case ev.fence < last.fence:
				problems = append(problems, fmt.Sprintf("event %d at %v: holder %s with fence %d after holder %s with fence %d: fences went back", i, at, ev.holder, ev.fence, last.holder, last.fence))
			case ev.fence == last.fence && previous != last:
				problems = append(problems, fmt.Sprintf("event %d at %v: the term of %s with fence %d shown again after a vacancy", i, at, ev.holder, ev.fence))
			}
			last = ev
		}
		previous = ev
	}
	return problems
}
