package etcd

import "github.com/electionkit/election"

var _ election.SessionEnder = (*session)(nil)

// EndsClaims reports true: Close revokes the session's lease, which
// deletes every key attached to it in one revision that watchers see as
// deletions.
func (s *session) EndsClaims() bool { return true }
