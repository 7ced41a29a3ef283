package election

import (
	"context"
	"errors"
)

// An orphan is a claim the store may hold for this process although no
// candidate leads with it: a claim whose reply was lost, or a release that
// failed. Stores whose claims live as long as the session (etcd, Consul)
// would otherwise keep it alive for ever, leaving the election held by no
// one. The elector releases orphans by token until the store answers.
type orphan struct {
	sess  *session
	claim Claim
}

func (e *Elector) addOrphan(s *session, c Claim) {
	e.mu.Lock()
	e.orphans = append(e.orphans, orphan{sess: s, claim: c})
	e.mu.Unlock()
}

// releaseOrphans releases the orphans of election name ("" for all). It
// reports whether none of them is left.
func (e *Elector) releaseOrphans(ctx context.Context, name string) bool {
	e.mu.Lock()
	var todo, keep []orphan
	for _, o := range e.orphans {
		if name == "" || o.claim.Name == name {
			todo = append(todo, o)
		} else {
			keep = append(keep, o)
		}
	}
	e.orphans = keep
	e.mu.Unlock()

	var left []orphan
	for _, o := range todo {
		if o.sess.isDead() {
			continue // the store dropped every claim of the session
		}
		err := o.sess.s.Release(ctx, o.claim)
		if err != nil && !errors.Is(err, ErrNotOwner) {
			left = append(left, o)
		}
	}
	if len(left) == 0 {
		return true
	}
	e.mu.Lock()
	e.orphans = append(e.orphans, left...)
	e.mu.Unlock()
	return false
}
