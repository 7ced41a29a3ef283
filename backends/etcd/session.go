package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
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
	// Entries written before the shared watch is established are checked
	// by listing the lease's keys once, at the first renewal: wait for it
	// briefly so that claims made at once are tracked by the watch.
	b.hub.start()
	wait, cancel := context.WithTimeout(ctx, b.dialTimeout)
	_, _ = b.hub.awaitEstablished(wait)
	cancel()
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
// given still exists with this session's lease and token. The Backend's
// one shared watch of the prefix (hub) sees every change to every entry:
// the session registers each key with it before writing it, and the hub
// marks the claim gone when the entry is deleted (release, revoke, expiry,
// a foreign delete) or overwritten by someone else (another lease or
// token). Keys are never reused, so an event on the key is an event on
// that very entry. Renew then needs no read of the keys: after the
// keep-alive answers at revision R, it waits until the watch has applied
// every event up to R (asking etcd for a progress notification when the
// prefix is idle), and a claim not marked gone by then was attached to the
// lease when the keep-alive extended it. A claim deleted at revision D is
// therefore reported by the first Renew whose keep-alive is answered at a
// revision ≥ D: at most one renew interval (plus the watch's delivery)
// after the delete, as with a read of the lease's keys.
//
// Only where the watch cannot vouch for an entry does Renew list the
// lease's keys (LeaseTimeToLive with keys, one round trip, bytes growing
// with the claims): an entry written before the shared watch was first
// established, every entry after a gap in the watch (its resume revision
// was compacted), and every claim when the watch does not reach R within
// half of Renew's time. The listing re-arms the watch's check for the
// entries it finds.
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
	// coverage is the shared watch's stretch of gapless watching that has
	// seen every change to the entry (0: none; list the lease's keys).
	coverage uint64
	// gone is set by the shared watch when the entry is deleted or
	// overwritten by someone else.
	gone bool
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
	hub := s.backend.hub
	coverage := hub.track(key, s, req.Token)
	put := clientv3.OpPut(key, value, clientv3.WithLease(s.lease))
	first := clientv3.OpGet(rng, clientv3.WithFirstCreate()...)
	otherwise := []clientv3.Op{first}
	if queue {
		otherwise = []clientv3.Op{put, first}
	}
	floor := s.backend.guard.floor()
	resp, err := s.backend.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(rng), "=", 0).WithPrefix()).
		Then(put).
		Else(otherwise...).
		Commit()
	if err != nil {
		// Unknown outcome: the core releases the claim by token, and a
		// claim of unknown fence is never renewed.
		hub.untrack(key)
		return election.Claim{}, nil, storeError(op, req.Name, err)
	}
	if err := s.backend.guard.check(op, req.Name, floor, resp.Header); err != nil {
		// The fence would repeat one handed out before: take the entry
		// back. If that fails, the error still wraps ErrUnavailable, so
		// the core releases the claim by token.
		if resp.Succeeded || queue {
			_, _ = s.backend.client.Txn(ctx).
				If(clientv3.Compare(clientv3.CreateRevision(key), "=", resp.Header.Revision)).
				Then(clientv3.OpDelete(key)).
				Commit()
		}
		hub.untrack(key)
		return election.Claim{}, nil, err
	}
	c := election.Claim{Name: req.Name, Token: req.Token, Fence: uint64(resp.Header.Revision)}
	if resp.Succeeded {
		return s.remember(key, c, coverage), nil, nil
	}
	if !queue {
		hub.untrack(key) // nothing was written
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
			hub.untrack(key)
		}
		// Tracked since that attempt, but the coverage it was written in
		// is not known here: the first renewal lists the lease's keys.
		own := string(kv.Key)
		hub.track(own, s, req.Token)
		return s.remember(own, election.Claim{Name: req.Name, Token: req.Token, Fence: uint64(kv.CreateRevision)}, 0), nil, nil
	}
	holder, err := leaderOf(req.Name, kv)
	switch {
	case err != nil && !queue:
		// Not an election record: held by an unknown writer, never vacant.
		taken := &election.TakenError{Holder: holder}
		return election.Claim{}, &holder, fmt.Errorf("etcd: claim %q: %w: %w", req.Name, taken, err)
	case !queue:
		return election.Claim{}, &holder, &election.TakenError{Holder: holder}
	}
	// In line, also behind an entry of an unknown writer (holder.ID empty).
	return s.remember(key, c, coverage), &holder, nil
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

// remember records that this session wrote c's entry at key, watched by
// the shared watch since coverage, and returns c.
func (s *session) remember(key string, c election.Claim, coverage uint64) election.Claim {
	s.mu.Lock()
	s.held[c.Token] = heldClaim{name: c.Name, key: key, fence: c.Fence, coverage: coverage}
	s.mu.Unlock()
	return c
}

// markGone records that the entry key written for token was deleted or
// overwritten by someone else. The hub calls it, holding its mutex.
func (s *session) markGone(token, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.held[token]; ok && h.key == key {
		h.gone = true
		s.held[token] = h
	}
}

// Renew extends the lease with one KeepAliveOnce and checks ownership of
// claims against what the shared watch has seen up to the keep-alive's
// revision (see [session] for why this is atomic enough): one round trip
// and one progress request on the watch stream, whatever len(claims).
func (s *session) Renew(ctx context.Context, claims []election.Claim) error {
	if s.isClosed() {
		return fmt.Errorf("etcd: renew: %w: session closed", election.ErrSessionExpired)
	}
	if err := s.backend.errIfClosed("renew", ""); err != nil {
		return err
	}
	floor := s.backend.guard.floor()
	ka, err := s.backend.client.KeepAliveOnce(ctx, s.lease)
	if err != nil {
		return storeError("renew", "", err)
	}
	if err := s.checkRevision(ctx, floor, ka.ResponseHeader); err != nil {
		return err
	}
	if len(claims) == 0 {
		return nil
	}
	// Give the watch half of the time left, keeping the rest for a listing
	// of the lease's keys if it does not get there.
	wait := s.backend.dialTimeout
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d) / 2
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	coverage := s.backend.hub.awaitProgress(wctx, ka.Revision)
	cancel()
	lost, unverified := s.check(claims, coverage)
	if len(unverified) > 0 {
		more, err := s.verify(ctx, unverified)
		if err != nil {
			return err
		}
		lost = append(lost, more...)
	}
	if len(lost) > 0 {
		return &election.NotOwnerError{Claims: lost}
	}
	return nil
}

// checkRevision fails a renewal when the cluster's revision went below
// floor, the highest seen before the keep-alive was sent: after a restore
// without bumped revisions the shared watch resumes from a revision the
// cluster has not reached and sees nothing until it does, so it cannot
// vouch for any claim (an entry the snapshot lacks is gone without a
// delete event). A keep-alive answered by a lagging member may also show
// a lower revision, so that is confirmed with a linearizable read first.
func (s *session) checkRevision(ctx context.Context, floor int64, h *etcdserverpb.ResponseHeader) error {
	g := &s.backend.guard
	if h == nil || h.Revision >= floor {
		g.observe(h)
		return nil
	}
	resp, err := s.backend.client.Get(ctx, s.backend.prefix+"/", clientv3.WithCountOnly())
	if err != nil {
		return storeError("renew", "", err)
	}
	return g.check("renew", "", floor, resp.Header)
}

// check sorts claims by what the shared watch knows of them in coverage:
// lost (not this session's, or its entry gone) and unverified (written
// outside coverage, or coverage 0: the watch did not reach the
// keep-alive's revision). The others are renewed.
func (s *session) check(claims []election.Claim, coverage uint64) (lost, unverified []election.Claim) {
	var untrack []string
	s.mu.Lock()
	for _, c := range claims {
		h, ok := s.held[c.Token]
		switch {
		case !ok || c.Fence == 0 || !h.is(c):
			lost = append(lost, c)
		case h.gone:
			// The entry is gone: the claim ended on the store.
			lost = append(lost, c)
			delete(s.held, c.Token)
			untrack = append(untrack, h.key)
		case coverage == 0 || h.coverage != coverage:
			unverified = append(unverified, c)
		}
	}
	s.mu.Unlock()
	s.backend.hub.untrack(untrack...)
	return lost, unverified
}

// verify checks claims by listing the keys attached to the lease
// (LeaseTimeToLive with keys): a claim is held iff its key is attached.
// The entries found are then left to the shared watch: they get the
// coverage that was current before the listing.
func (s *session) verify(ctx context.Context, claims []election.Claim) ([]election.Claim, error) {
	coverage := s.backend.hub.currentCoverage()
	ttl, err := s.backend.client.TimeToLive(ctx, s.lease, clientv3.WithAttachedKeys())
	if err != nil {
		return nil, storeError("renew", "", err)
	}
	s.backend.guard.observe(ttl.ResponseHeader)
	// TTL is the remaining time truncated to seconds: 0 is alive, -1 gone.
	if ttl.TTL < 0 {
		return nil, fmt.Errorf("etcd: renew: %w: %w", election.ErrSessionExpired, rpctypes.ErrLeaseNotFound)
	}
	attached := make(map[string]bool, len(ttl.Keys))
	for _, k := range ttl.Keys {
		attached[string(k)] = true
	}
	var lost []election.Claim
	var untrack []string
	s.mu.Lock()
	for _, c := range claims {
		h, ok := s.held[c.Token]
		if !ok || !h.is(c) {
			lost = append(lost, c)
			continue
		}
		if attached[h.key] && !h.gone {
			h.coverage = coverage
			s.held[c.Token] = h
			continue
		}
		lost = append(lost, c)
		delete(s.held, c.Token)
		untrack = append(untrack, h.key)
	}
	s.mu.Unlock()
	s.backend.hub.untrack(untrack...)
	return lost, nil
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
		if ok {
			defer s.backend.hub.untrack(key)
		} else {
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
	h, ok := s.held[c.Token]
	ok = ok && h.is(c)
	if ok {
		delete(s.held, c.Token)
	}
	s.mu.Unlock()
	if ok {
		s.backend.hub.untrack(h.key)
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
	keys := make([]string, 0, len(s.held))
	for _, h := range s.held {
		keys = append(keys, h.key)
	}
	clear(s.held)
	s.mu.Unlock()
	s.backend.hub.untrack(keys...)
	return nil
}

func (s *session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
