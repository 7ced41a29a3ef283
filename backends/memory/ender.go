package memory

import "github.com/electionkit/election"

var _ election.SessionEnder = (*session)(nil)

// EndsClaims reports whether Close ends the session's claims at once and
// tells watchers: true in the etcd and Consul modes, false in the Redis
// mode, whose Close leaves the claims to expire.
func (s *session) EndsClaims() bool { return s.client.store.expiry != RedisExpiry }
