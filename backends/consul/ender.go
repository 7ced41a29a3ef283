package consul

import "github.com/electionkit/election"

var _ election.SessionEnder = (*session)(nil)

// EndsClaims reports whether Close hands the session's elections over at
// once: destroying a session with behavior "delete" deletes its keys, and
// watchers see the deletions, unless a lock-delay keeps the keys from
// being claimed again for a while.
func (s *session) EndsClaims() bool { return s.lockDelay == 0 }
