package watchq

import "time"

// Holders is the bookkeeping of a hub whose store announces no expiry
// (Redis, Postgres): the sessions that hold watched elections, each with
// one timer, never one per election, since every election a session holds
// expires with it. What the timer does (read the session's remaining TTL,
// then the elections it held) is the hub's: fire is called from the
// timer's goroutine, with the generation it was armed with, and counts
// only while [Holders.Current] says so. Every method is called with the
// hub's mutex held; fire is called without it.
type Holders struct {
	m    map[string]*Holder
	fire func(id string, gen uint64)
	gen  uint64 // the last generation handed out: each arming gets a new one
}

// Holder is one session that holds at least one watched election.
type Holder struct {
	Names map[string]struct{} // the watched elections it holds
	timer *time.Timer
	gen   uint64 // the generation of the armed timer: older firings do nothing
}

// NewHolders returns an empty Holders whose timers call fire.
func NewHolders(fire func(id string, gen uint64)) *Holders {
	return &Holders{m: map[string]*Holder{}, fire: fire}
}

// Move moves the watched election name from the holder session old to new
// ("" for none). When new holds no other watched election yet, its timer
// is armed to fire after first.
func (hs *Holders) Move(name, old, new string, first time.Duration) {
	if old == new {
		return
	}
	if o := hs.m[old]; old != "" && o != nil {
		delete(o.Names, name)
		if len(o.Names) == 0 {
			hs.Drop(old)
		}
	}
	if new == "" {
		return
	}
	n := hs.m[new]
	if n == nil {
		n = &Holder{Names: map[string]struct{}{}}
		hs.m[new] = n
		hs.arm(new, n, first)
	}
	n.Names[name] = struct{}{}
}

// Arm sets the timer of the holder session id, if it holds a watched
// election, to fire after d.
func (hs *Holders) Arm(id string, d time.Duration) {
	if h := hs.m[id]; h != nil {
		hs.arm(id, h, d)
	}
}

func (hs *Holders) arm(id string, h *Holder, d time.Duration) {
	if h.timer != nil {
		h.timer.Stop()
	}
	hs.gen++
	gen := hs.gen
	h.gen = gen
	h.timer = time.AfterFunc(d, func() { hs.fire(id, gen) })
}

// Current returns the holder session id if gen is the generation its
// timer was last armed with: a firing, or the answer of a read it made,
// that still counts.
func (hs *Holders) Current(id string, gen uint64) (*Holder, bool) {
	h := hs.m[id]
	if h == nil || h.gen != gen {
		return nil, false
	}
	return h, true
}

// Drop stops the timer of the holder session id and forgets it; it
// returns the watched elections it held.
func (hs *Holders) Drop(id string) map[string]struct{} {
	h := hs.m[id]
	if h == nil {
		return nil
	}
	if h.timer != nil {
		h.timer.Stop()
	}
	delete(hs.m, id)
	return h.Names
}

// DropAll stops every timer and forgets every holder session.
func (hs *Holders) DropAll() {
	for id := range hs.m {
		hs.Drop(id)
	}
}

// Len returns the number of holder sessions, each with one timer.
func (hs *Holders) Len() int { return len(hs.m) }

// Elections returns the number of watched elections the holder sessions
// hold, all sessions together.
func (hs *Holders) Elections() int {
	n := 0
	for _, h := range hs.m {
		n += len(h.Names)
	}
	return n
}
