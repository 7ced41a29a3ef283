package redis

import (
	"context"
	"time"
)

// holderSession is a session that holds at least one watched election.
// Redis announces no expiry, so the hub keeps one timer per such session,
// never one per election: when it fires, one PTTL of the session key says
// whether the session lives (the timer is set again to its remaining TTL)
// or is gone, and then every watched election it held is vacant from that
// moment on, since the claim script treats a claim whose session key is
// gone as vacant. A renewal of one of this Backend's own sessions moves its
// timer without a read.
type holderSession struct {
	names map[string]struct{} // watched elections it holds
	timer *time.Timer
	gen   uint64 // bumped whenever the timer is set or stopped: older firings do nothing
}

func (hs *holderSession) stop() {
	hs.gen++
	if hs.timer != nil {
		hs.timer.Stop()
	}
}

// noExpiryRecheck is when a session key with no expiry (an operator ran
// PERSIST on it) is looked at again.
const noExpiryRecheck = time.Minute

// setHolderLocked moves the watched election name from the holder session
// old to new. alive is how long new is known to live (0: unknown, read it
// now; negative: the key has no expiry).
func (h *hub) setHolderLocked(name, old, new string, alive time.Duration) {
	if old == new {
		return
	}
	if hs := h.holders[old]; old != "" && hs != nil {
		delete(hs.names, name)
		if len(hs.names) == 0 {
			hs.stop()
			delete(h.holders, old)
		}
	}
	if new == "" {
		return
	}
	hs := h.holders[new]
	if hs == nil {
		hs = &holderSession{names: map[string]struct{}{}}
		h.holders[new] = hs
		switch {
		case alive < 0:
			h.armLocked(new, hs, noExpiryRecheck)
		case alive == 0:
			h.armLocked(new, hs, 0)
		default:
			h.armLocked(new, hs, alive+time.Millisecond)
		}
	}
	hs.names[name] = struct{}{}
}

// armLocked sets the timer of the holder session id to fire after d.
func (h *hub) armLocked(id string, hs *holderSession, d time.Duration) {
	hs.stop()
	gen := hs.gen
	hs.timer = time.AfterFunc(d, func() { h.checkHolder(id, gen) })
}

// checkHolder reads the remaining TTL of the holder session id.
func (h *hub) checkHolder(id string, gen uint64) {
	h.mu.Lock()
	hs := h.holders[id]
	if h.closed || hs == nil || hs.gen != gen {
		h.mu.Unlock()
		return
	}
	h.backend.loops.Add(1) // before Close waits: it sets closed under h.mu first
	h.mu.Unlock()
	defer h.backend.loops.Done()

	ctx, cancel := context.WithTimeout(context.Background(), 2*h.check)
	ms, err := h.backend.client.PTTL(ctx, h.keys.session(id)).Result()
	cancel()

	defer h.flushPending()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.holders[id] != hs || hs.gen != gen {
		return
	}
	switch {
	case err != nil:
		h.armLocked(id, hs, h.check) // the store did not answer: look again soon
	case ms == -2: // go-redis keeps PTTL's -2 (no key) and -1 (no expiry) as nanoseconds
		h.sessionGoneLocked(id)
	case ms < 0:
		h.armLocked(id, hs, noExpiryRecheck)
	default:
		h.armLocked(id, hs, ms+time.Millisecond)
	}
}

// sessionGoneLocked makes every watched election the session id held
// vacant, at the end of the term it held.
func (h *hub) sessionGoneLocked(id string) {
	hs := h.holders[id]
	if hs == nil {
		return
	}
	hs.stop()
	delete(h.holders, id)
	for name := range hs.names {
		t := h.topics[name]
		if t == nil || t.st.holder != id || t.st.leader == nil {
			continue
		}
		h.offerLocked(name, state{version: endVersion(t.st.leader.Fence)})
	}
}

// sessionRenewed moves the timer of this Backend's session id, if it holds
// a watched election, to until: the session lives at least that long.
func (h *hub) sessionRenewed(id string, until time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hs := h.holders[id]; hs != nil && !h.closed {
		h.armLocked(id, hs, time.Until(until)+time.Millisecond)
	}
}
