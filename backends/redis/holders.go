package redis

import (
	"context"
	"time"
)

// Redis announces no expiry, so the hub keeps one timer per session that
// holds a watched election ([watchq.Holders]), never one per election:
// when it fires, one PTTL of the session key says whether the session
// lives (the timer is set again to its remaining TTL) or is gone, and then
// every watched election it held is vacant from that moment on, since the
// claim script treats a claim whose session key is gone as vacant. A
// renewal of one of this Backend's own sessions moves its timer without a
// read.

// noExpiryRecheck is when a session key with no expiry (an operator ran
// PERSIST on it) is looked at again.
const noExpiryRecheck = time.Minute

// setHolderLocked moves the watched election name from the holder session
// old to new. alive is how long new is known to live (0: unknown, read it
// now; negative: the key has no expiry).
func (h *hub) setHolderLocked(name, old, new string, alive time.Duration) {
	first := alive + time.Millisecond
	switch {
	case alive < 0:
		first = noExpiryRecheck
	case alive == 0:
		first = 0
	}
	h.holders.Move(name, old, new, first)
}

// checkHolder reads the remaining TTL of the holder session id.
func (h *hub) checkHolder(id string, gen uint64) {
	h.mu.Lock()
	if _, ok := h.holders.Current(id, gen); h.closed || !ok {
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
	if _, ok := h.holders.Current(id, gen); h.closed || !ok {
		return
	}
	switch {
	case err != nil:
		h.holders.Arm(id, h.check) // the store did not answer: look again soon
	case ms == -2: // go-redis keeps PTTL's -2 (no key) and -1 (no expiry) as nanoseconds
		h.sessionGoneLocked(id)
	case ms < 0:
		h.holders.Arm(id, noExpiryRecheck)
	default:
		h.holders.Arm(id, ms+time.Millisecond)
	}
}

// sessionGoneLocked makes every watched election the session id held
// vacant, at the end of the term it held.
func (h *hub) sessionGoneLocked(id string) {
	for name := range h.holders.Drop(id) {
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
	if !h.closed {
		h.holders.Arm(id, time.Until(until)+time.Millisecond)
	}
}
