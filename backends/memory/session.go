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

func (s *session) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	if err := s.client.enter(ctx, "claim"); err != nil {
		return election.Claim{}, err
	}
	st := s.client.store
	defer st.mu.Unlock()
	ss, err := s.live()
	if err != nil {
		return election.Claim{}, err
	}
	if _, held := st.keys[req.Name]; held {
		return election.Claim{}, &election.TakenError{Holder: *st.leaderLocked(req.Name)}
	}
	st.rev++
	meta := make(map[string]string, len(req.Metadata))
	for k, v := range req.Metadata {
		meta[k] = v
	}
	req.Metadata = meta
	st.keys[req.Name] = &entry{req: req, fence: st.rev, sess: ss.id}
	ss.keys[req.Name] = struct{}{}
	st.notifyLocked(req.Name)
	return election.Claim{Name: req.Name, Token: req.Token, Fence: st.rev}, nil
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
	e, ok := st.keys[c.Name]
	if !ok || e.req.Token != c.Token {
		return fmt.Errorf("memory: release %q: %w", c.Name, election.ErrNotOwner)
	}
	delete(st.keys, c.Name)
	if ss, ok := st.sessions[e.sess]; ok {
		delete(ss.keys, c.Name)
	}
	st.notifyLocked(c.Name)
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
