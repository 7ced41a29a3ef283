package redis

import "github.com/electionkit/election"

var _ election.SessionEnder = (*session)(nil)

// EndsClaims reports true: Close deletes the session key, which makes
// every claim that points to it vacant, and announces it on the prefix's
// channel in the same script.
func (s *session) EndsClaims() bool { return true }
