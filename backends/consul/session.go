package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

// maxRounds bounds the read-then-compare-and-set rounds of Claim and
// Release when the key keeps changing under them.
const maxRounds = 4

var _ election.Session = (*session)(nil)

// session is one Consul session; every claim made through it is a KV lock
// held by it.
type session struct {
	b   *Backend
	id  string
	ttl time.Duration

	mu     sync.Mutex
	closed bool
	// made remembers, per name, the fence and token of the claim this
	// session made, so Release can prove ownership without a read.
	made map[string]madeClaim
}

type madeClaim struct {
	token string
	fence uint64
}

// remember records a claim this session made.
func (s *session) remember(c election.Claim) election.Claim {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.made == nil {
		s.made = map[string]madeClaim{}
	}
	s.made[c.Name] = madeClaim{token: c.Token, fence: c.Fence}
	return c
}

// takeMade removes and reports whether this session made c.
func (s *session) takeMade(c election.Claim) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.made[c.Name]
	if !ok || c.Fence == 0 || m.token != c.Token || m.fence != c.Fence {
		return false
	}
	delete(s.made, c.Name)
	return true
}

// TTL returns the TTL the session was created with. Consul grants TTLs as
// asked (within session_ttl_min and 24h) and may keep the session up to
// twice as long after the last renewal.
func (s *session) TTL() time.Duration { return s.ttl }

func (s *session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *session) expired(what string) error {
	return fmt.Errorf("consul: %s: %w", what, election.ErrSessionExpired)
}

// Claim locks the election key with this session in one transaction that
// first checks the key is absent (or unchanged since it was read vacant), so
// that a key held by another claim of this same session is reported taken
// instead of being silently re-locked. The fence is the ModifyIndex of the
// lock: the Raft index of the transaction, which never repeats and only
// grows, also across key deletions and server restarts that keep their data.
func (s *session) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	what := fmt.Sprintf("claim %q", req.Name)
	if err := s.b.check(req.Name); err != nil {
		return election.Claim{}, err
	}
	if req.Token == "" {
		return election.Claim{}, invalid("Token", "empty owner token")
	}
	if s.isClosed() {
		return election.Claim{}, s.expired(what)
	}
	value, err := encodeRecord(req)
	if err != nil {
		return election.Claim{}, invalid("Metadata", "%v", err)
	}
	var vacant *api.KVPair // the key as last read, present but held by no session
	for range maxRounds {
		guard := s.b.kvOp(api.KVCheckNotExists, req.Name)
		if vacant != nil {
			guard = s.b.kvOp(api.KVCheckIndex, req.Name)
			guard.KV.Index = vacant.ModifyIndex
		}
		lock := s.b.kvOp(api.KVLock, req.Name)
		lock.KV.Value, lock.KV.Session = value, s.id
		ok, resp, _, err := s.b.client.Txn().Txn(api.TxnOps{guard, lock}, s.b.query(ctx))
		if err != nil {
			return election.Claim{}, storeErr(what, err)
		}
		if ok {
			// The lock is the last operation; its result carries the
			// indexes the transaction gave the key.
			if n := len(resp.Results); n > 0 && resp.Results[n-1].KV != nil && resp.Results[n-1].KV.Session == s.id {
				return s.remember(election.Claim{Name: req.Name, Token: req.Token, Fence: resp.Results[n-1].KV.ModifyIndex}), nil
			}
			return election.Claim{}, storeErr(what, errors.New("transaction succeeded without the lock's result"))
		}
		terr := txnError(resp.Errors)
		switch {
		case terr.failed(-1, "invalid session"):
			return election.Claim{}, s.expired(what)
		case terr.failed(1, "lock delay"):
			return election.Claim{}, fmt.Errorf("consul: %s: %w: the previous holder's lock-delay is in effect: %w",
				what, election.ErrUnavailable, terr)
		case !terr.failed(0, "") || terr.failed(-1, "Permission denied"):
			return election.Claim{}, storeErr(what, terr)
		}
		// The guard failed: the key exists, or changed since it was read.
		p, _, err := s.b.client.KV().Get(s.b.Key(req.Name), s.b.consistent(ctx))
		if err != nil {
			return election.Claim{}, storeErr(what, err)
		}
		l, _, held, err := holder(req.Name, p)
		if err != nil {
			return election.Claim{}, err
		}
		if held {
			return election.Claim{}, &election.TakenError{Holder: l}
		}
		vacant = p // nil when the key vanished meanwhile
	}
	return election.Claim{}, fmt.Errorf("consul: %s: %w: the key changed under %d attempts", what, election.ErrUnavailable, maxRounds)
}

// Renew renews the Consul session (one request, whatever the number of
// claims) and then reads every claim's key in one consistent request: a
// read-only transaction for up to 64 claims (Consul's limit per
// transaction), one listing of the prefix beyond. A claim is renewed when
// its key is still locked by this session and holds its token; the others
// are listed in a *election.NotOwnerError. The read comes after the renewal,
// so a claim reported renewed was held when the renewal was applied.
func (s *session) Renew(ctx context.Context, claims []election.Claim) error {
	if s.b.life.Err() != nil {
		return errClosed
	}
	if s.isClosed() {
		return s.expired("renew")
	}
	var entries []*api.SessionEntry
	if _, err := s.b.client.Raw().Write("/v1/session/renew/"+s.id, nil, &entries, s.b.write(ctx)); err != nil {
		var se api.StatusError
		if errors.As(err, &se) && se.Code == http.StatusNotFound {
			return s.confirmExpired(ctx)
		}
		return storeErr("renew session", err)
	}
	if len(entries) == 0 {
		return s.confirmExpired(ctx)
	}
	if len(claims) == 0 {
		return nil
	}
	keys, err := s.readKeys(ctx, claims)
	if err != nil {
		return storeErr("renew: read claims", err)
	}
	var lost []election.Claim
	for _, c := range claims {
		p := keys[s.b.Key(c.Name)]
		_, token, held, err := holder(c.Name, p)
		if err != nil || !held || p.Session != s.id || token != c.Token {
			lost = append(lost, c)
		}
	}
	if len(lost) > 0 {
		return &election.NotOwnerError{Claims: lost}
	}
	return nil
}

// confirmExpired checks a "session not found" answer to a renewal with a
// consistent read: the renewal is served from the Raft leader's state
// without waiting for it to catch up, so a leader elected a moment ago may
// not know the session yet. Reporting that as expired would make the core
// drop a session that still holds its claims.
func (s *session) confirmExpired(ctx context.Context) error {
	e, _, err := s.b.client.Session().Info(s.id, s.b.consistent(ctx))
	switch {
	case err != nil:
		return storeErr("renew: confirm session expiry", err)
	case e != nil:
		return fmt.Errorf("consul: renew: %w: the server answered \"session not found\" but a consistent read finds it", election.ErrUnavailable)
	}
	return s.expired("renew")
}

// maxTxnOps is the number of operations Consul accepts in one transaction.
const maxTxnOps = 64

// readKeys reads the keys of claims with a consistent read, by key.
func (s *session) readKeys(ctx context.Context, claims []election.Claim) (map[string]*api.KVPair, error) {
	q := s.b.query(ctx)
	q.RequireConsistent = true
	out := make(map[string]*api.KVPair, len(claims))
	if len(claims) > maxTxnOps {
		pairs, _, err := s.b.client.KV().List(s.b.s.prefix+"/", q)
		if err != nil {
			return nil, err
		}
		for _, p := range pairs {
			out[p.Key] = p
		}
		return out, nil
	}
	ops := make(api.TxnOps, 0, len(claims))
	for _, c := range claims {
		ops = append(ops, s.b.kvOp(api.KVGetOrEmpty, c.Name))
	}
	ok, resp, _, err := s.b.client.Txn().Txn(ops, q)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, txnError(resp.Errors)
	}
	for _, r := range resp.Results {
		if r.KV != nil && r.KV.ModifyIndex != 0 {
			out[r.KV.Key] = r.KV
		}
	}
	return out, nil
}

// Release deletes the election key if its value holds c.Token. For a claim
// this session made, one transaction checks that the key's ModifyIndex is
// still c.Fence and deletes it; otherwise it reads the key, compares the
// token and runs that transaction on the ModifyIndex it read, so nothing
// changes unless the key is exactly the one read. It returns an
// error wrapping [election.ErrNotOwner] when the key is absent, vacant or
// holds another token. The session's other claims are not affected.
func (s *session) Release(ctx context.Context, c election.Claim) error {
	what := fmt.Sprintf("release %q", c.Name)
	if err := s.b.check(c.Name); err != nil {
		return err
	}
	if s.takeMade(c) {
		// This session made c, and nothing rewrites a held key: if its
		// ModifyIndex is still c.Fence (the lock's index), it is that claim.
		// One transaction releases it (the handoff's critical path).
		deleted, err := s.deleteAt(ctx, c.Name, c.Fence)
		switch {
		case err != nil:
			s.remember(c) // outcome unknown: a retry may take this path again
			return storeErr(what, err)
		case !deleted:
			return fmt.Errorf("consul: %s: %w: the claim is gone", what, election.ErrNotOwner)
		}
		return nil
	}
	for range maxRounds {
		// A stale read must not report ErrNotOwner for a key that is held:
		// the core would stop releasing it and the election would stay
		// held by no one.
		p, _, err := s.b.client.KV().Get(s.b.Key(c.Name), s.b.consistent(ctx))
		if err != nil {
			return storeErr(what, err)
		}
		_, token, held, err := holder(c.Name, p)
		if err != nil || !held || token != c.Token {
			return fmt.Errorf("consul: %s: %w", what, election.ErrNotOwner)
		}
		deleted, err := s.deleteAt(ctx, c.Name, p.ModifyIndex)
		if err != nil {
			return storeErr(what, err)
		}
		if deleted {
			return nil
		}
		// The key changed or vanished since it was read: read it again.
	}
	return fmt.Errorf("consul: %s: %w: the key changed under %d attempts", what, election.ErrUnavailable, maxRounds)
}

// deleteAt deletes election name's key in one transaction if its
// ModifyIndex is index. It reports false, with no error, when the key has
// another index or is gone.
//
// Not KV().DeleteCAS: Consul reports a CAS delete of a key that is already
// gone as a success, so two racing releases of one claim would both
// succeed. A check-index guard fails on a missing key.
func (s *session) deleteAt(ctx context.Context, name string, index uint64) (bool, error) {
	guard := s.b.kvOp(api.KVCheckIndex, name)
	guard.KV.Index = index
	ok, resp, _, err := s.b.client.Txn().Txn(api.TxnOps{guard, s.b.kvOp(api.KVDelete, name)}, s.b.query(ctx))
	switch {
	case err != nil:
		return false, err
	case ok:
		return true, nil
	}
	if terr := txnError(resp.Errors); !terr.failed(0, "") {
		return false, terr
	}
	return false, nil
}

// Close destroys the Consul session; Consul deletes every key it still
// holds (behavior "delete") and watchers see the elections vacant. Close is
// idempotent; a session already gone counts as closed.
func (s *session) Close(ctx context.Context) error {
	if s.isClosed() {
		return nil
	}
	if s.b.life.Err() != nil {
		return errClosed
	}
	if _, err := s.b.client.Session().Destroy(s.id, s.b.write(ctx)); err != nil && !strings.Contains(err.Error(), "Unknown session") {
		return storeErr("close session", err)
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}
