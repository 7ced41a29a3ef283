package postgres

import (
	"context"
	"sync/atomic"
	"time"
)

// expiryReads counts the reads of the elections of expired holder
// sessions (checkHolder), for tests.
var expiryReads atomic.Int64

// Expiry writes nothing in Postgres, so the hub keeps one timer per
// session that holds a watched election ([watchq.Holders]), never one per
// election: every election a session holds expires with it. When the timer
// fires, one statement reads the session's remaining TTL by the server's
// clock: alive, the timer is set again to it; expired or gone, one read of
// every watched election the session held delivers their new states (a
// read that finds claims waiting in line settles first, promoting the next
// one: line.go). So a thousand watched elections of one crashed holder
// cost one timer and two statements, and a live holder one statement per
// firing, whatever the number of elections or watchers.

// setHolderLocked moves the watched election name from the holder session
// old to new ("" for none); left is how long new lived when read.
func (h *hub) setHolderLocked(name, old, new string, left time.Duration) {
	h.holders.Move(name, old, new, left+time.Millisecond)
}

// sessionRenewed moves the timer of this Backend's session id, if it holds
// a watched election, to until: the session lives at least that long, so
// a Backend watching the elections it leads reads nothing for it.
func (h *hub) sessionRenewed(id string, until time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.holders.Arm(id, time.Until(until)+time.Millisecond)
	}
}

// checkHolder reads the remaining TTL of the holder session id, and the
// elections it held once it has expired.
func (h *hub) checkHolder(id string, gen uint64) {
	h.mu.Lock()
	hs, ok := h.holders.Current(id, gen)
	if h.closed || !ok {
		h.mu.Unlock()
		return
	}
	h.loops.Add(1) // before close waits: it sets closed under h.mu first
	h.mu.Unlock()
	defer h.loops.Done()

	check := h.b.cfg.ListenCheck
	ctx, cancel := context.WithTimeout(h.ctx, 4*check)
	defer cancel()
	var leftMicros int64
	err := h.b.pool.QueryRow(ctx, h.b.sql.sessionLeft, id).Scan(&leftMicros)
	if err == nil && leftMicros > 0 {
		h.mu.Lock()
		if _, ok := h.holders.Current(id, gen); !h.closed && ok {
			h.holders.Arm(id, time.Duration(leftMicros)*time.Microsecond+time.Millisecond)
		}
		h.mu.Unlock()
		return
	}
	var states map[string]state
	if err == nil {
		h.mu.Lock()
		names := make([]string, 0, len(hs.Names))
		for name := range hs.Names {
			names = append(names, name)
		}
		h.mu.Unlock()
		expiryReads.Add(1)
		states, err = h.b.readMany(ctx, names)
	}

	defer h.flushPending()
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.holders.Current(id, gen); h.closed || !ok {
		return
	}
	if err != nil {
		h.holders.Arm(id, check) // the store did not answer: look again soon
		return
	}
	for name, st := range states {
		h.offerLocked(name, st)
	}
	if _, ok := h.holders.Current(id, gen); ok {
		// Still holding an election by the read (renewed meanwhile, or
		// expired under a settle that could not judge it): look again.
		h.holders.Arm(id, check)
	}
}
