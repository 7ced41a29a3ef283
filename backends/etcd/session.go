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

var (
	_ election.Session = (*session)(nil)
	_ election.Queuer  = (*session)(nil)
)

// session is one etcd lease and the claims made through it.
//
// Keys. Every claim, held or waiting in line, is one entry: a key under
// its election's range (see entryRange) named after the lease and a
// per-session sequence number, so no key is ever written twice. The holder
// of an election is its entry with the lowest create revision: Claim
// writes an entry only when the range is empty, Enqueue writes one in any
// case, and when the holder's entry is deleted (release, revoke, lease
// expiry) the next entry holds the election from that same revision on.
// An entry that held the election holds it until it is deleted: every
// entry created later has a higher create revision.
//
// Ownership on renew. All claims share the lease, so one KeepAliveOnce
// extends them all; what Renew must still prove is that each claim it is
// given still exists. A transaction of per-claim compares would grow with
// the claims (and etcd caps a transaction at 128 operations), so instead
// the session remembers, for each token, the key and create revision of
// the entry it wrote (held), and Renew asks etcd for the keys attached to
// the lease (LeaseTimeToLive with keys, one round trip whatever the
// count). A claim is renewed iff its key is still attached to the lease:
// keys are never reused, so an attached key is that very entry, and a key
// attached when LeaseTimeToLive answers and created before Renew started
// was attached throughout, so the keep-alive sent before it extended it.
type session struct {
	backend *Backend
	lease   clientv3.LeaseID
	ttl     time.Duration

	mu     sync.Mutex
	held   map[string]heldClaim // by owner token
	seq    uint64
	closed bool
}

// heldClaim is an entry this session wrote.
type heldClaim struct {
	name  string
	key   string
	fence uint64
}

// is reports whether h is the entry of claim c: same name, and the same
// fence unless c's is zero (a claim of unknown outcome, known by token).
func (h heldClaim) is(c election.Claim) bool {
	return h.name == c.Name && (c.Fence == 0 || h.fence == c.Fence)
}

// TTL returns the lease TTL etcd granted, a whole number of seconds at least
// the TTL asked for.
func (s *session) TTL() time.Duration { return s.ttl }

// Claim writes an entry for req, attached to the session's lease, in one
// transaction, if the election has no entry at all; the fence is the
// entry's create revision. If the election is held by an entry this session
// wrote for req.Token (an earlier attempt whose answer was lost), that
// claim is returned.
func (s *session) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	c, _, err := s.write(ctx, req, false)
	return c, err
}

// Enqueue writes an entry for req, attached to the session's lease, in one
// transaction: it holds the election at once if the election has no other
// entry, else it waits behind every entry written before it. The fence is
// the entry's create revision.
func (s *session) Enqueue(ctx context.Context, req election.ClaimRequest) (election.Claim, *election.Leader, error) {
	return s.write(ctx, req, true)
}

// write is Claim (queue false) and Enqueue (queue true): one transaction
// that writes the entry if the range is empty and otherwise reads the
// holder, writing the entry anyway when queueing. holder is nil when the
// new entry holds the election; when it is not nil without queueing, err
// is a *election.TakenError naming it.
func (s *session) write(ctx context.Context, req election.ClaimRequest, queue bool) (election.Claim, *election.Leader, error) {
	op := "claim"
	if queue {
		op = "enqueue"
	}
	if s.isClosed() {
		return election.Claim{}, nil, fmt.Errorf("etcd: %s %q: %w: session closed", op, req.Name, election.ErrSessionExpired)
	}
	if err := s.backend.errIfClosed(op, req.Name); err != nil {
		return election.Claim{}, nil, err
	}
	value, err := encodeRecord(req)
	if err != nil {
		return election.Claim{}, nil, invalid("metadata", "%v", err)
	}
	rng := s.backend.rangeOf(req.Name)
	key := s.newKey(rng)
	put := clientv3.OpPut(key, value, clientv3.WithLease(s.lease))
	first := clientv3.OpGet(rng, clientv3.WithFirstCreate()...)
	otherwise := []clientv3.Op{first}
	if queue {
		otherwise = []clientv3.Op{put, first}
	}
	resp, err := s.backend.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(rng), "=", 0).WithPrefix()).
		Then(put).
		Else(otherwise...).
		Commit()
	if err != nil {
		return election.Claim{}, nil, storeError(op, req.Name, err)
	}
	c := election.Claim{Name: req.Name, Token: req.Token, Fence: uint64(resp.Header.Revision)}
	if resp.Succeeded {
		return s.remember(key, c), nil, nil
	}
	kvs := resp.Responses[len(otherwise)-1].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		// The read runs in the same transaction as the failed compare.
		return election.Claim{}, nil, fmt.Errorf("etcd: %s %q: taken but the holder could not be read", op, req.Name)
	}
	kv := kvs[0]
	if r, err := decodeRecord(kv); err == nil && r.Token == req.Token && clientv3.LeaseID(kv.Lease) == s.lease {
		// An earlier attempt with this token, whose answer was lost, wrote
		// the entry that holds the election: that claim is this one.
		if queue {
			_, _ = s.backend.client.Delete(ctx, key) // the entry just queued behind it
		}
		return s.remember(string(kv.Key), election.Claim{Name: req.Name, Token: req.Token, Fence: uint64(kv.CreateRevision)}), nil, nil
	}
	holder, err := leaderOf(req.Name, kv)
	if err != nil {
		if queue {
			_, _ = s.backend.client.Delete(ctx, key)
		}
		return election.Claim{}, nil, err
	}
	if !queue {
		return election.Claim{}, &holder, &election.TakenError{Holder: holder}
	}
	return s.remember(key, c), &holder, nil
}

// newKey returns a key under rng that no other entry has had or will have:
// the lease ID is unique in the cluster while the lease lives, and the
// sequence number within it.
func (s *session) newKey(rng string) string {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	return fmt.Sprintf("%s%016x-%d", rng, int64(s.lease), n)
}

// remember records that this session wrote c's entry at key, and returns c.
func (s *session) remember(key string, c election.Claim) election.Claim {
	s.mu.Lock()
	s.held[c.Token] = heldClaim{name: c.Name, key: key, fence: c.Fence}
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
		h, ok := s.held[c.Token]
		mine := ok && c.Fence != 0 && h.is(c)
		if mine && attached[h.key] {
			continue
		}
		lost = append(lost, c)
		if mine {
			// The entry is gone from the lease: the claim ended on the store.
			delete(s.held, c.Token)
		}
	}
	s.mu.Unlock()
	if len(lost) > 0 {
		return &election.NotOwnerError{Claims: lost}
	}
	return nil
}

// Release deletes c's entry, held or waiting in line, if it exists: one
// delete conditional on the entry's create revision being c.Fence, in one
// round trip, for an entry this session wrote; otherwise a read of the
// election's entries to find the one with c's token (and, when c.Fence is
// not zero, created at c.Fence), then that conditional delete. c.Fence
// zero releases by token alone, for a claim whose outcome was unknown. It
// returns an error wrapping election.ErrNotOwner, having changed nothing,
// when no such entry exists.
func (s *session) Release(ctx context.Context, c election.Claim) error {
	if err := s.backend.errIfClosed("release", c.Name); err != nil {
		return err
	}
	key, fence, ok := s.entryOf(c)
	if !ok {
		resp, err := s.backend.client.Get(ctx, s.backend.rangeOf(c.Name), clientv3.WithPrefix())
		if err != nil {
			return storeError("release", c.Name, err)
		}
		for _, kv := range resp.Kvs {
			r, err := decodeRecord(kv)
			if err == nil && r.Token == c.Token && (c.Fence == 0 || uint64(kv.CreateRevision) == c.Fence) {
				key, fence, ok = string(kv.Key), uint64(kv.CreateRevision), true
				break
			}
		}
		if !ok {
			s.forget(c)
			return fmt.Errorf("etcd: release %q: %w: no entry holds the claim's token", c.Name, election.ErrNotOwner)
		}
	}
	// A key names one entry and a create revision one write: the compare
	// makes sure the delete removes exactly that entry.
	txn, err := s.backend.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", int64(fence))).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return storeError("release", c.Name, err)
	}
	s.forget(c)
	if !txn.Succeeded {
		return fmt.Errorf("etcd: release %q: %w: the claim is gone", c.Name, election.ErrNotOwner)
	}
	return nil
}

// entryOf returns the key and create revision of the entry this session
// wrote for c, if it remembers it (same token, and same fence unless c's is
// zero).
func (s *session) entryOf(c election.Claim) (string, uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.held[c.Token]
	if !ok || !h.is(c) {
		return "", 0, false
	}
	return h.key, h.fence, true
}

// forget drops what the session remembers about c's entry, if it is that
// claim's (same token, and same fence unless c's is zero).
func (s *session) forget(c election.Claim) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.held[c.Token]; ok && h.is(c) {
		delete(s.held, c.Token)
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
