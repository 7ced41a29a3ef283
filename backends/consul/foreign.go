package consul

import (
	"context"
	"strings"

	"github.com/hashicorp/consul/api"
)

// A write to an election key that bypasses this package (a plain `consul kv
// put`, which keeps the lock of the session holding the key) leaves the key
// locked by the holder's session with a value that is no longer the
// holder's claim. The holder's watch shows the key rewritten, at a higher
// index, and its candidate steps down without releasing (the store no
// longer holds its claim); but its session goes on renewing its other
// claims, or at least lives out its TTL, and with "delete" behavior the key
// would stay locked by it for as long as the session lives: every other
// candidate would see the election held, by an unknown writer, for ever.
// So the session that holds such a key deletes it: when a watch of this
// backend lists a key locked by one of the backend's open sessions, and
// that session has no claim of that name at that index and none in flight,
// the key is deleted in one transaction that checks the session and the
// index, so that only the rewritten version goes, and the election is
// vacant again.

// register adds s to the backend's open sessions.
func (b *Backend) register(s *session) {
	b.smu.Lock()
	defer b.smu.Unlock()
	if b.sessions == nil {
		b.sessions = map[string]*session{}
	}
	b.sessions[s.id] = s
}

// unregister removes s from the backend's open sessions.
func (b *Backend) unregister(s *session) {
	b.smu.Lock()
	defer b.smu.Unlock()
	delete(b.sessions, s.id)
}

// openSession returns the open session of this backend with ID id, or nil.
func (b *Backend) openSession(id string) *session {
	b.smu.Lock()
	defer b.smu.Unlock()
	return b.sessions[id]
}

// busy marks a claim or release of name in flight on s until the returned
// function is called: the key may be locked by s without s having recorded
// the claim yet (or any more), and must not be taken for a foreign write.
func (s *session) busy(name string) (done func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight == nil {
		s.inFlight = map[string]int{}
	}
	s.inFlight[name]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.inFlight[name]--; s.inFlight[name] == 0 {
			delete(s.inFlight, name)
		}
	}
}

// foreign reports whether a key of election name locked by s at ModifyIndex
// index is not a claim s made: s made no claim of name at that index and
// has none in flight.
func (s *session) foreign(name string, index uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.inFlight[name] > 0 {
		return false
	}
	m, ok := s.made[name]
	return !ok || m.fence != index
}

// noteForeign finds the keys of bk's listing that are locked by an open
// session of this backend but are not its claims (see the top of this
// file), and leaves them for that session's next renewal to delete. Only
// watched names are looked at: the core watches every election it leads.
func (h *hub) noteForeign(bk *bucket, pairs api.KVPairs) {
	type note struct {
		s    *session
		name string
		p    *api.KVPair
	}
	var notes []note
	h.mu.Lock()
	for _, p := range pairs {
		if p.Session == "" {
			continue
		}
		seg, ok := strings.CutPrefix(p.Key, bk.prefix)
		if !ok {
			continue
		}
		if e := bk.entries[seg]; e != nil {
			if s := h.b.openSession(p.Session); s != nil {
				notes = append(notes, note{s, e.name, p})
			}
		}
	}
	h.mu.Unlock()
	for _, n := range notes {
		if n.s.foreign(n.name, n.p.ModifyIndex) {
			n.s.mu.Lock()
			if n.s.foreignKeys == nil {
				n.s.foreignKeys = map[string]uint64{}
			}
			n.s.foreignKeys[n.name] = n.p.ModifyIndex
			n.s.mu.Unlock()
		}
	}
}

// dropForeign deletes the keys noteForeign found locked by s but not its
// claims, each in one transaction that checks that s still locks it at the
// index seen. Renew calls it after renewing the session: by then a
// renewal interval has passed since the watch showed the rewrite to the
// core, which cancelled the old term's handlers then, so the next leader
// is not elected while they wind down. A key that could not be reached is
// tried again at the next renewal.
func (s *session) dropForeign(ctx context.Context) {
	s.mu.Lock()
	keys := s.foreignKeys
	s.foreignKeys = nil
	s.mu.Unlock()
	for name, index := range keys {
		if !s.foreign(name, index) {
			continue
		}
		held := s.b.kvOp(api.KVCheckSession, name)
		held.KV.Session = s.id
		guard := s.b.kvOp(api.KVCheckIndex, name)
		guard.KV.Index = index
		if _, _, _, err := s.b.client.Txn().Txn(api.TxnOps{held, guard, s.b.kvOp(api.KVDelete, name)}, s.b.query(ctx)); err != nil {
			s.mu.Lock()
			if s.foreignKeys == nil {
				s.foreignKeys = map[string]uint64{}
			}
			if _, ok := s.foreignKeys[name]; !ok {
				s.foreignKeys[name] = index
			}
			s.mu.Unlock()
		}
	}
}
