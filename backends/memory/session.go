package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/electionkit/election"
)

// session is a client's handle on a session. In etcd and Consul modes id
// names the session on the store; in Redis mode the store has no session
// and this handle only carries the TTL of its claims.
type session struct {
	client *Client
	id     uint64
	ttl    time.Duration
	closed bool // guarded by store.mu
}

// queueSession is an etcd-mode session: it also keeps waiting claims in
// line. Redis-mode and Consul-mode sessions are plain sessions, so the core
// finds no election.Queuer on them.
type queueSession struct{ *session }

var (
	_ election.Session = (*session)(nil)
	_ election.Session = (*queueSession)(nil)
	_ election.Queuer  = (*queueSession)(nil)
)

// TTL returns the TTL the session was opened with: the store grants TTLs
// as asked.
func (s *session) TTL() time.Duration { return s.ttl }

func (s *session) expired(op string) error {
	return fmt.Errorf("memory: %s: session %d: %w", op, s.id, election.ErrSessionExpired)
}

// isClosed reports whether Close was called, for the Redis-mode checks
// that, like the redis backend's, need no I/O.
func (s *session) isClosed() bool {
	st := s.client.store
	st.mu.Lock()
	defer st.mu.Unlock()
	return s.closed
}

// liveLocked returns the store session (nil in Redis mode), or
// ErrSessionExpired when it is closed or gone. store.mu is held.
func (s *session) liveLocked(op string) (*storeSession, error) {
	st := s.client.store
	if s.closed {
		return nil, s.expired(op)
	}
	if st.expiry == RedisExpiry {
		return nil, nil
	}
	ss, ok := st.sessions[s.id]
	if !ok {
		return nil, s.expired(op)
	}
	if !st.clock.Now().Before(ss.expires) {
		// Expired, and its timer has not run yet: the outcome depends on
		// the store's clock, not on which goroutine runs first.
		st.dropSessionLocked(ss, EndExpiry)
		return nil, s.expired(op)
	}
	return ss, nil
}

// Claim takes the election if it is vacant. It returns a
// *election.TakenError naming the holder otherwise; in Redis mode with the
// holder's remaining TTL, and during the quarantine after a restart with
// an empty Holder and the rest of the quarantine.
func (s *session) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	c, _, err := s.write(ctx, "claim", req, false)
	return c, err
}

// Enqueue takes the election if it is vacant, and otherwise puts the claim
// at the end of its line.
func (q *queueSession) Enqueue(ctx context.Context, req election.ClaimRequest) (election.Claim, *election.Leader, error) {
	return q.write(ctx, "enqueue", req, true)
}

func (s *session) write(ctx context.Context, op string, req election.ClaimRequest, queue bool) (election.Claim, *election.Leader, error) {
	st := s.client.store
	if st.expiry == RedisExpiry && s.isClosed() {
		return election.Claim{}, nil, s.expired(op)
	}
	var (
		c      election.Claim
		holder *election.Leader
	)
	err := s.client.call(ctx, op, func() error {
		if _, err := s.liveLocked(op); err != nil {
			return err
		}
		if left := st.quarantineLocked(s.ttl); left > 0 {
			return &election.TakenError{Holder: election.Leader{Election: req.Name}, ExpiresIn: left}
		}
		cur := st.holderLocked(req.Name)
		if cur != nil && !queue {
			taken := &election.TakenError{Holder: *cur.leader()}
			if st.expiry == RedisExpiry {
				taken.ExpiresIn = cur.expires.Sub(st.clock.Now())
			}
			return taken
		}
		st.rev++
		meta := make(map[string]string, len(req.Metadata))
		for k, v := range req.Metadata {
			meta[k] = v
		}
		req.Metadata = meta
		e := &entry{req: req, fence: st.rev, sess: s.id, hold: -1}
		c = election.Claim{Name: req.Name, Token: req.Token, Fence: st.rev}
		if cur != nil {
			st.lines[req.Name] = append(st.lines[req.Name], e)
			holder = cur.leader()
			return nil
		}
		if st.expiry == RedisExpiry {
			e.expires = st.clock.Now().Add(s.ttl)
			st.armKeyLocked(e)
		}
		st.holdLocked(e, st.clock.Now())
		st.notifyLocked(req.Name)
		return nil
	})
	if err != nil {
		return election.Claim{}, nil, err
	}
	return c, holder, nil
}

// Renew extends the session (etcd, Consul) or each claim's own TTL (Redis)
// and reports the claims the store no longer holds for their token in a
// *election.NotOwnerError. ErrSessionExpired means the session is gone
// (etcd, Consul) or was closed.
func (s *session) Renew(ctx context.Context, claims []election.Claim) error {
	st := s.client.store
	if st.expiry == RedisExpiry {
		// Like the redis backend: checks that need no round trip.
		if s.isClosed() {
			return s.expired("renew")
		}
		if len(claims) == 0 {
			return nil
		}
	}
	var lost []election.Claim
	err := s.client.call(ctx, "renew", func() error {
		ss, err := s.liveLocked("renew")
		if err != nil {
			return err
		}
		now := st.clock.Now()
		for _, c := range claims {
			e := st.holderLocked(c.Name)
			switch {
			case e == nil || e.req.Token != c.Token:
				lost = append(lost, c)
			case ss == nil: // Redis: the claim's own TTL
				e.expires = now.Add(s.ttl)
				st.armKeyLocked(e)
			case e.sess != ss.id:
				lost = append(lost, c)
			}
		}
		if ss != nil {
			st.renewSessionLocked(ss)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if lost != nil {
		return &election.NotOwnerError{Claims: lost}
	}
	return nil
}

// Release ends the claim if the store holds it with c's token (and c's
// fence, when set), or takes it out of line; otherwise it returns
// ErrNotOwner and changes nothing.
func (s *session) Release(ctx context.Context, c election.Claim) error {
	st := s.client.store
	return s.client.call(ctx, "release", func() error {
		owns := func(e *entry) bool { return e.req.Token == c.Token && (c.Fence == 0 || e.fence == c.Fence) }
		if e := st.holderLocked(c.Name); e != nil && owns(e) {
			st.endTermLocked(c.Name, EndRelease, st.clock.Now())
			return nil
		}
		line := st.lines[c.Name]
		for i, e := range line {
			if owns(e) {
				st.setLineLocked(c.Name, append(line[:i:i], line[i+1:]...))
				return nil
			}
		}
		return fmt.Errorf("memory: release %q: %w", c.Name, election.ErrNotOwner)
	})
}

// Close ends the session: in etcd and Consul modes it drops the session's
// claims (an etcd lease revoke, a Consul session destroy) and watchers are
// told; in Redis mode it does no I/O and the claims stay until they expire
// or are released. Later calls of the session return ErrSessionExpired.
// Close is idempotent.
func (s *session) Close(ctx context.Context) error {
	st := s.client.store
	if st.expiry == RedisExpiry || s.isClosed() {
		st.mu.Lock()
		s.closed = true
		st.mu.Unlock()
		return nil
	}
	return s.client.call(ctx, "close session", func() error {
		s.closed = true
		if ss, ok := st.sessions[s.id]; ok {
			st.dropSessionLocked(ss, EndSessionClose)
		}
		return nil
	})
}

// quarantineLocked returns how much longer a claim with ttl is refused
// after the store started again without its data (Redis mode), or a
// non-positive duration.
func (s *Store) quarantineLocked(ttl time.Duration) time.Duration {
	if s.started.IsZero() {
		return 0
	}
	return s.started.Add(ttl).Sub(s.clock.Now())
}
