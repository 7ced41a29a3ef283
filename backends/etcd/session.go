package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/electionkit/election"
)

// OpenSession grants one etcd lease; every claim made through the session is
// attached to it. ttl must be a whole number of seconds, at least 1s: etcd
// counts lease TTLs in seconds, and rounding a TTL down would let etcd expire
// a claim earlier than asked, while rounding it up would silently slow every
// takeover. etcd raises a TTL below its minimum (1.5 × the server's election
// timeout, 2s with default flags); Session.TTL reports what it granted.
//
// Errors: election.ErrInvalidArgument for a ttl etcd cannot grant as asked;
// election.ErrUnavailable when the cluster does not answer (a lease may have
// been granted; it expires after its TTL).
func (b *Backend) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	if err := checkTTL(ttl); err != nil {
		return nil, err
	}
	if err := b.errIfClosed("open session", ""); err != nil {
		return nil, err
	}
	asked := int64(ttl / time.Second)
	resp, err := b.client.Grant(ctx, asked)
	if err != nil {
		return nil, storeError("open session", "", err)
	}
	if resp.TTL < asked {
		// etcd never grants less than asked; if a server ever did, claims
		// could expire early, so refuse the lease.
		_, _ = b.client.Revoke(ctx, resp.ID)
		return nil, fmt.Errorf("etcd: open session: server granted TTL %ds, less than the %ds asked", resp.TTL, asked)
	}
	return &session{
		backend: b,
		lease:   resp.ID,
		ttl:     time.Duration(resp.TTL) * time.Second,
		held:    map[string]heldClaim{},
	}, nil
}

func checkTTL(ttl time.Duration) error {
	switch {
	case ttl < time.Second:
		return invalid("ttl", "%v is below etcd's 1s lease granularity", ttl)
	case ttl > maxLeaseTTL:
		return invalid("ttl", "%v is above etcd's maximum lease TTL %v", ttl, maxLeaseTTL)
	case ttl%time.Second != 0:
		return invalid("ttl", "%v is not a whole number of seconds (etcd leases count in seconds; use %v or %v)",
			ttl, ttl.Truncate(time.Second), ttl.Truncate(time.Second)+time.Second)
	}
	return nil
}

// session is one etcd lease and the claims made through it.
//
// Ownership on renew. All claims share the lease, so one KeepAliveOnce
// extends them all; what Renew must still prove is that each claim it is
// given is held by this session with that token. A transaction of per-claim
// compares would grow with the claims (and etcd caps a transaction at 128
// operations), so instead the session remembers, for each name, the token
// and create revision of the claim it made (held), and Renew asks etcd for
// the keys attached to the lease (LeaseTimeToLive with keys, one round trip
// whatever the count). A claim is renewed iff its key is still attached to
// the lease and held still names its token and fence.
//
// Why that suffices: only this session puts keys on its lease, only with
// Claim, only when the key is absent. Claim forgets the name before its
// transaction and remembers it only after success, so if the key attached
// now were a newer one than the claim being renewed, held would no longer
// name the older claim's token. A key attached when LeaseTimeToLive answers
// and created before Renew started was attached throughout, so the
// keep-alive sent before it extended it.
type session struct {
	backend *Backend
	lease   clientv3.LeaseID
	ttl     time.Duration

	mu     sync.Mutex
	held   map[string]heldClaim
	closed bool
}

// heldClaim is the claim this session made on one name.
type heldClaim struct {
	token string
	fence uint64
}

// TTL returns the lease TTL etcd granted, a whole number of seconds at least
// the TTL asked for.
func (s *session) TTL() time.Duration { return s.ttl }

// Claim creates the election key attached to the session's lease in one
// transaction, if the key does not exist; the fence is the key's create
// revision. It is idempotent per token: if the key already holds this
// token on this session's lease (an earlier attempt whose answer was lost
// succeeded), that claim is returned. While a Claim on a name is in flight,
// Renew reports this session's earlier claim on that name as not owned (a
// new key could otherwise pass for it); if the Claim finds that earlier
// claim still in place, it is owned again afterwards.
func (s *session) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	if s.isClosed() {
		return election.Claim{}, fmt.Errorf("etcd: claim %q: %w: session closed", req.Name, election.ErrSessionExpired)
	}
	if err := s.backend.errIfClosed("claim", req.Name); err != nil {
		return election.Claim{}, err
	}
	value, err := encodeRecord(req)
	if err != nil {
		return election.Claim{}, invalid("metadata", "%v", err)
	}
	key := s.backend.key(req.Name)
	prev, hadPrev := s.take(req.Name)
	resp, err := s.backend.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, value, clientv3.WithLease(s.lease))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return election.Claim{}, storeError("claim", req.Name, err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			// The Get runs in the same transaction as the failed compare.
			return election.Claim{}, fmt.Errorf("etcd: claim %q: taken but the holder could not be read", req.Name)
		}
		kv := kvs[0]
		if r, err := decodeRecord(kv); err == nil && r.Token == req.Token && clientv3.LeaseID(kv.Lease) == s.lease {
			// An earlier attempt with this token, whose answer was lost,
			// did create the key: that claim is this one.
			return s.remember(election.Claim{Name: req.Name, Token: req.Token, Fence: uint64(kv.CreateRevision)}), nil
		}
		if hadPrev && uint64(kv.CreateRevision) == prev.fence && clientv3.LeaseID(kv.Lease) == s.lease {
			// The key is still the claim this session held before: it
			// stays held (Renew must keep reporting it owned).
			s.restore(req.Name, prev)
		}
		holder, err := leaderOf(req.Name, kv)
		if err != nil {
			return election.Claim{}, err
		}
		return election.Claim{}, &election.TakenError{Holder: holder}
	}
	return s.remember(election.Claim{Name: req.Name, Token: req.Token, Fence: uint64(resp.Header.Revision)}), nil
}

// remember records c as the session's claim on its name and returns it.
func (s *session) remember(c election.Claim) election.Claim {
	s.mu.Lock()
	s.held[c.Name] = heldClaim{token: c.Token, fence: c.Fence}
	s.mu.Unlock()
	return c
}

// Renew extends the lease with one KeepAliveOnce and checks ownership of
// claims with one LeaseTimeToLive read (see [session] for why this is
// atomic enough): two round trips whatever len(claims).
func (s *session) Renew(ctx context.Context, claims []election.Claim) error {
	if s.isClosed() {
		return fmt.Errorf("etcd: renew: %w: session closed", election.ErrSessionExpired)
	}
	if err := s.backend.errIfClosed("renew", ""); err != nil {
		return err
	}
	if _, err := s.backend.client.KeepAliveOnce(ctx, s.lease); err != nil {
		return storeError("renew", "", err)
	}
	if len(claims) == 0 {
		return nil
	}
	ttl, err := s.backend.client.TimeToLive(ctx, s.lease, clientv3.WithAttachedKeys())
	if err != nil {
		return storeError("renew", "", err)
	}
	// TTL is the remaining time truncated to seconds: 0 is alive, -1 gone.
	if ttl.TTL < 0 {
		return fmt.Errorf("etcd: renew: %w: %w", election.ErrSessionExpired, rpctypes.ErrLeaseNotFound)
	}
	attached := make(map[string]bool, len(ttl.Keys))
	for _, k := range ttl.Keys {
		attached[string(k)] = true
	}
	var lost []election.Claim
	s.mu.Lock()
	for _, c := range claims {
		h, ok := s.held[c.Name]
		if ok && h.token == c.Token && h.fence == c.Fence && attached[s.backend.key(c.Name)] {
			continue
		}
		lost = append(lost, c)
		if ok && h.token == c.Token && h.fence == c.Fence {
			// The key is gone from the lease: the claim ended on the store.
			delete(s.held, c.Name)
		}
	}
	s.mu.Unlock()
	if len(lost) > 0 {
		return &election.NotOwnerError{Claims: lost}
	}
	return nil
}

// Release deletes the election key if it holds c's token (and, when c.Fence
// is not zero, was created at c.Fence). For a claim this session made, one
// delete conditional on the key's create revision being c.Fence (a revision
// names exactly one put); otherwise a read, then a delete conditional on the
// key's mod revision being the one read, so nothing else can have changed in
// between. c.Fence zero releases by token alone, for a claim whose
// outcome was unknown. It returns an error wrapping election.ErrNotOwner,
// having changed nothing, when the key is absent or holds another claim.
func (s *session) Release(ctx context.Context, c election.Claim) error {
	if err := s.backend.errIfClosed("release", c.Name); err != nil {
		return err
	}
	key := s.backend.key(c.Name)
	if s.made(c) {
		// This session made c: the key created at revision c.Fence is
		// that claim, so one compare-and-delete on the create revision
		// releases it in one round trip (the handoff's critical path).
		txn, err := s.backend.client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", int64(c.Fence))).
			Then(clientv3.OpDelete(key)).
			Commit()
		if err != nil {
			return storeError("release", c.Name, err)
		}
		s.forget(c.Name, &c)
		if !txn.Succeeded {
			return fmt.Errorf("etcd: release %q: %w: the claim is gone", c.Name, election.ErrNotOwner)
		}
		return nil
	}
	for {
		resp, err := s.backend.client.Get(ctx, key)
		if err != nil {
			return storeError("release", c.Name, err)
		}
		if len(resp.Kvs) == 0 {
			s.forget(c.Name, &c)
			return fmt.Errorf("etcd: release %q: %w: election is vacant", c.Name, election.ErrNotOwner)
		}
		kv := resp.Kvs[0]
		r, err := decodeRecord(kv)
		if err != nil || r.Token != c.Token || (c.Fence != 0 && uint64(kv.CreateRevision) != c.Fence) {
			s.forget(c.Name, &c)
			return fmt.Errorf("etcd: release %q: %w: held by another claim", c.Name, election.ErrNotOwner)
		}
		txn, err := s.backend.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(key)).
			Commit()
		if err != nil {
			return storeError("release", c.Name, err)
		}
		if txn.Succeeded {
			s.forget(c.Name, &c)
			return nil
		}
		// The key changed between the read and the delete (it expired or
		// was released and maybe claimed again): read it again.
	}
}

// Close revokes the lease, which deletes every key attached to it and
// notifies watchers. It is idempotent: after one successful Close (or when
// the lease is already gone) it returns nil. If the cluster does not answer,
// it returns an error wrapping election.ErrUnavailable and a later Close
// tries again; the lease expires after its TTL anyway (also when the
// Backend was closed first).
func (s *session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	if err := s.backend.errIfClosed("close session", ""); err != nil {
		return err
	}
	_, err := s.backend.client.Revoke(ctx, s.lease)
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return storeError("close session", "", err)
	}
	s.mu.Lock()
	s.closed = true
	clear(s.held)
	s.mu.Unlock()
	return nil
}

func (s *session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// forget drops what the session remembers about name: all of it when c is
// nil, else only if it is c's claim (same token, and same fence unless c's
// is zero), so a forged claim cannot make the session forget the real one.
// made reports whether this session made c and still remembers it.
func (s *session) made(c election.Claim) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.held[c.Name]
	return ok && c.Fence != 0 && h.token == c.Token && h.fence == c.Fence
}

// take removes and returns what the session remembers about name.
func (s *session) take(name string) (heldClaim, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.held[name]
	delete(s.held, name)
	return h, ok
}

// restore puts back a claim removed by take, unless another claim of name
// was remembered meanwhile.
func (s *session) restore(name string, h heldClaim) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.held[name]; !ok {
		s.held[name] = h
	}
}

func (s *session) forget(name string, c *election.Claim) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.held[name]
	if ok && (c == nil || h.token == c.Token && (c.Fence == 0 || h.fence == c.Fence)) {
		delete(s.held, name)
	}
}
