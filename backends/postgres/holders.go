package postgres

import (
	"context"
	"sync/atomic"
	"time"
)

// expiryReads counts the reads of the elections of expired holder
// sessions (checkHolder), for tests.
var expiryReads atomic.Int64

// holderSession is a session that holds at least one watched election.
// Expiry writes nothing in Postgres, so the hub keeps one timer per such
// session, never one per election: every election a session holds expires
// with it. When the timer fires, one statement reads the session's
// remaining TTL by the server's clock: alive, the timer is set again to
// it; expired or gone, one read of every watched election the session held
// delivers their new states (a read that finds claims waiting in line
// settles first, promoting the next one: line.go). So a thousand watched
// elections of one crashed holder cost one timer and two statements, and a
// live holder one statement per firing, whatever the number of elections
// or watchers.
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

// setHolderLocked moves the watched election name from the holder session
// old to new ("" for none); left is how long new lived when read.
func (h *hub) setHolderLocked(name, old, new string, left time.Duration) {
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
		h.armLocked(new, hs, left+time.Millisecond)
	}
	hs.names[name] = struct{}{}
}

// armLocked sets the timer of the holder session id to fire after d.
func (h *hub) armLocked(id string, hs *holderSession, d time.Duration) {
	hs.stop()
	gen := hs.gen
	hs.timer = time.AfterFunc(d, func() { h.checkHolder(id, gen) })
}

// sessionRenewed moves the timer of this Backend's session id, if it holds
// a watched election, to until: the session lives at least that long, so
// a Backend watching the elections it leads reads nothing for it.
func (h *hub) sessionRenewed(id string, until time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hs := h.holders[id]; hs != nil && !h.closed {
		h.armLocked(id, hs, time.Until(until)+time.Millisecond)
	}
}

// stopHoldersLocked stops every holder timer and forgets the holders.
func (h *hub) stopHoldersLocked() {
	for _, hs := range h.holders {
		hs.stop()
	}
	h.holders = map[string]*holderSession{}
}

// checkHolder reads the remaining TTL of the holder session id, and the
// elections it held once it has expired.
func (h *hub) checkHolder(id string, gen uint64) {
	h.mu.Lock()
	hs := h.holders[id]
	if h.closed || hs == nil || hs.gen != gen {
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
		if !h.closed && h.holders[id] == hs && hs.gen == gen {
			h.armLocked(id, hs, time.Duration(leftMicros)*time.Microsecond+time.Millisecond)
		}
		h.mu.Unlock()
		return
	}
	var states map[string]state
	if err == nil {
		h.mu.Lock()
		names := make([]string, 0, len(hs.names))
		for name := range hs.names {
			names = append(names, name)
		}
		h.mu.Unlock()
		expiryReads.Add(1)
		states, err = h.b.readMany(ctx, names)
	}

	defer h.flushPending()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.holders[id] != hs || hs.gen != gen {
		return
	}
	if err != nil {
		h.armLocked(id, hs, check) // the store did not answer: look again soon
		return
	}
	for name, st := range states {
		h.offerLocked(name, st)
	}
	if h.holders[id] == hs && hs.gen == gen {
		// Still holding an election by the read (renewed meanwhile, or
		// expired under a settle that could not judge it): look again.
		h.armLocked(id, hs, check)
	}
}
