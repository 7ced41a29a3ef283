package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/electionkit/election"
)

// session is a client's handle on a store session.
type session struct {
	client *Client
	id     uint64
	ttl    time.Duration
}

func (s *session) TTL() time.Duration { return s.ttl }

// live returns the store session, or ErrSessionExpired. store.mu is held.
func (s *session) live() (*storeSession, error) {
	ss, ok := s.client.store.sessions[s.id]
	if !ok {
		return nil, fmt.Errorf("memory: session %d: %w", s.id, election.ErrSessionExpired)
	}
	return ss, nil
}

var _ election.Queuer = (*session)(nil)

// Claim takes the election if it is vacant.
func (s *session) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	c, _, err := s.write(ctx, "claim", req, false)
	return c, err
}

// Enqueue takes the election if it is vacant, and otherwise puts the claim
// at the end of its line.
func (s *session) Enqueue(ctx context.Context, req election.ClaimRequest) (election.Claim, *election.Leader, error) {
	return s.write(ctx, "enqueue", req, true)
}

func (s *session) write(ctx context.Context, op string, req election.ClaimRequest, queue bool) (election.Claim, *election.Leader, error) {
	if err := s.client.enter(ctx, op); err != nil {
		return election.Claim{}, nil, err
	}
	st := s.client.store
	defer st.mu.Unlock()
	ss, err := s.live()
	if err != nil {
		return election.Claim{}, nil, err
	}
	holder := st.leaderLocked(req.Name)
	if holder != nil && !queue {
		return election.Claim{}, holder, &election.TakenError{Holder: *holder}
	}
	st.rev++
	meta := make(map[string]string, len(req.Metadata))
	for k, v := range req.Metadata {
		meta[k] = v
	}
	req.Metadata = meta
	e := &entry{req: req, fence: st.rev, sess: ss.id}
	c := election.Claim{Name: req.Name, Token: req.Token, Fence: st.rev}
	if holder != nil {
		st.lines[req.Name] = append(st.lines[req.Name], e)
		return c, holder, nil
	}
	st.keys[req.Name] = e
	ss.keys[req.Name] = struct{}{}
	st.notifyLocked(req.Name)
	return c, nil, nil
}

func (s *session) Renew(ctx context.Context, claims []election.Claim) error {
	if err := s.client.enter(ctx, "renew"); err != nil {
		return err
	}
	st := s.client.store
	defer st.mu.Unlock()
	ss, err := s.live()
	if err != nil {
		return err
	}
	var lost []election.Claim
	for _, c := range claims {
		e, ok := st.keys[c.Name]
		if !ok || e.req.Token != c.Token || e.sess != ss.id {
			lost = append(lost, c)
		}
	}
	ss.expires = st.clock.Now().Add(ss.ttl)
	if lost != nil {
		return &election.NotOwnerError{Claims: lost}
	}
	return nil
}

func (s *session) Release(ctx context.Context, c election.Claim) error {
	if err := s.client.enter(ctx, "release"); err != nil {
		return err
	}
	st := s.client.store
	defer st.mu.Unlock()
	owns := func(e *entry) bool { return e.req.Token == c.Token && (c.Fence == 0 || e.fence == c.Fence) }
	e, ok := st.keys[c.Name]
	if !ok || !owns(e) {
		// Not the holder: maybe a claim in line.
		line := st.lines[c.Name]
		for i, e := range line {
			if owns(e) {
				st.setLineLocked(c.Name, append(line[:i:i], line[i+1:]...))
				return nil
			}
		}
		return fmt.Errorf("memory: release %q: %w", c.Name, election.ErrNotOwner)
	}
	if ss, ok := st.sessions[e.sess]; ok {
		delete(ss.keys, c.Name)
	}
	st.endTermLocked(c.Name)
	return nil
}

// Close ends the session and drops its claims, like an etcd lease revoke.
func (s *session) Close(ctx context.Context) error {
	if err := s.client.enter(ctx, "close session"); err != nil {
		return err
	}
	st := s.client.store
	defer st.mu.Unlock()
	if ss, ok := st.sessions[s.id]; ok {
		st.dropSessionLocked(ss)
	}
	return nil
}
