package redis

import "github.com/electionkit/election"

// localClaim is a claim one of this Backend's sessions holds. Renewal
// extends only the session key, so a claim taken away by other means (its
// key deleted or evicted, then claimed by another session) is learnt from
// the announcement of the newer term, or from the re-read after a
// resubscription, and marked lost; Renew reports it in a
// *[election.NotOwnerError].
type localClaim struct {
	session string
	token   string
	fence   uint64
	lost    bool
}

// addLocal records a claim just made.
func (h *hub) addLocal(name, session, token string, fence uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.local[name]; old != nil && old.lost {
		h.lost--
	}
	h.local[name] = &localClaim{session: session, token: token, fence: fence}
}

// removeLocal forgets a claim released, or found not held, with its token.
func (h *hub) removeLocal(name, token string, fence uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if lc := h.local[name]; lc != nil && lc.fence == fence && lc.token == token {
		if lc.lost {
			h.lost--
		}
		delete(h.local, name)
	}
}

// dropSession forgets every claim of a closed session.
func (h *hub) dropSession(session string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, lc := range h.local {
		if lc.session == session {
			if lc.lost {
				h.lost--
			}
			delete(h.local, name)
		}
	}
}

// supersedeLocked marks the local claim of name lost when a term with a
// greater fence began or ended.
func (h *hub) supersedeLocked(name string, fence uint64) {
	if lc := h.local[name]; lc != nil && !lc.lost && fence > lc.fence {
		lc.lost = true
		h.lost++
	}
}

// checkLocalLocked marks the local claim of name lost when st, read after
// the claim was made (snap is the claim when the read began), shows another
// holder, another term, or a vacancy.
func (h *hub) checkLocalLocked(name string, snap localClaim, st state) {
	lc := h.local[name]
	if lc == nil || lc.lost || lc.fence != snap.fence || lc.session != snap.session {
		return
	}
	if st.holder != lc.session || st.leader == nil || st.leader.Fence != lc.fence {
		lc.lost = true
		h.lost++
	}
}

// notHeld returns the claims of claims that session does not hold as far
// as the hub knows: never made through it (another token or fence), or
// marked lost. It does no I/O.
func (h *hub) notHeld(session string, claims []election.Claim) []election.Claim {
	h.mu.Lock()
	defer h.mu.Unlock()
	var failed []election.Claim
	for _, c := range claims {
		lc := h.local[c.Name]
		if lc == nil || lc.lost || lc.session != session || lc.token != c.Token || lc.fence != c.Fence {
			failed = append(failed, c)
		}
	}
	return failed
}
