package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
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
	b         *Backend
	id        string
	ttl       time.Duration // the elector's TTL
	lockDelay time.Duration // the Consul session's lock-delay; 0 for none

	mu     sync.Mutex
	closed bool
	// gone: the store said the session no longer exists (an "invalid
	// session" answer, or a consistent read after "session not found").
	// Consul deleted its keys with it, so Close has none to delete.
	gone bool
	// made remembers, per name, the fence and token of the claim this
	// session made, so that Release can prove ownership without a read and
	// Renew without reading the claims' keys.
	made map[string]madeClaim
	// marker is the ModifyIndex of the session's marker key as this
	// session last wrote it; 0 until its first claim creates it.
	marker uint64
	// inFlight counts the claims and releases in progress per name (see
	// busy).
	inFlight map[string]int
	// foreignKeys are the election keys, by name, with their ModifyIndex,
	// that a watch saw locked by this session without being its claims:
	// rewritten by a write that bypassed this package. Renew deletes them
	// (see dropForeign).
	foreignKeys map[string]uint64
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

// forget drops the claim this session made of name if its token is token:
// the store no longer holds it.
func (s *session) forget(name, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.made[name]; ok && m.token == token {
		delete(s.made, name)
	}
}

// markerOp returns the transaction operation that locks the session's
// marker key with the session, creating it if needed.
func (s *session) markerOp() *api.TxnOp {
	return &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVLock, Key: s.b.markerKey(s.id), Value: markerValue,
		Session: s.id, Namespace: s.b.s.namespace, Partition: s.b.s.partition}}
}

// markerWritten records the marker's ModifyIndex from a transaction's
// results, if it wrote the marker.
func (s *session) markerWritten(results api.TxnResults) {
	key := s.b.markerKey(s.id)
	for _, r := range results {
		if r.KV != nil && r.KV.Key == key {
			s.mu.Lock()
			s.marker = max(s.marker, r.KV.ModifyIndex)
			s.mu.Unlock()
		}
	}
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

// expired returns the error of an operation that found the session gone
// (or closed), and remembers it for Close.
func (s *session) expired(what string) error {
	s.mu.Lock()
	s.gone = true
	s.mu.Unlock()
	return fmt.Errorf("consul: %s: %w", what, election.ErrSessionExpired)
}

// Claim locks the election key with this session in one transaction that
// first checks the key is absent (or unchanged since it was read vacant), so
// that a key held by another claim of this same session is reported taken
// instead of being silently re-locked. The fence is the ModifyIndex of the
// lock: the Raft index of the transaction, which never repeats and only
// grows, also across key deletions and server restarts that keep their data.
// The session's first claim also creates its marker key (see Renew) in the
// same transaction. A key whose value is not an election record is held by
// an unknown writer: the *election.TakenError comes wrapped in an error that
// names the key.
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
	defer s.busy(req.Name)()
	var vacant *api.KVPair // the key as last read, present but held by no session
	for range maxRounds {
		guard := s.b.kvOp(api.KVCheckNotExists, req.Name)
		if vacant != nil {
			guard = s.b.kvOp(api.KVCheckIndex, req.Name)
			guard.KV.Index = vacant.ModifyIndex
		}
		lock := s.b.kvOp(api.KVLock, req.Name)
		lock.KV.Value, lock.KV.Session = value, s.id
		ops := api.TxnOps{guard, lock}
		s.mu.Lock()
		if s.marker == 0 {
			ops = append(ops, s.markerOp())
		}
		s.mu.Unlock()
		ok, resp, _, err := s.b.client.Txn().Txn(ops, s.b.query(ctx))
		if err != nil {
			return election.Claim{}, storeErr(what, err)
		}
		if ok {
			// The lock's result carries the indexes the transaction gave
			// the key.
			s.markerWritten(resp.Results)
			key := s.b.Key(req.Name)
			for _, r := range resp.Results {
				if r.KV != nil && r.KV.Key == key && r.KV.Session == s.id {
					return s.remember(election.Claim{Name: req.Name, Token: req.Token, Fence: r.KV.ModifyIndex}), nil
				}
			}
			return election.Claim{}, storeErr(what, errors.New("transaction succeeded without the lock's result"))
		}
		terr := txnError(resp.Errors)
		switch {
		case terr.failed(-1, "invalid session"):
			return election.Claim{}, s.expired(what)
		case terr.failed(1, "lock delay"):
			return election.Claim{}, s.lockDelayed(req.Name)
		case !terr.failed(0, "") || terr.failed(-1, "Permission denied"):
			return election.Claim{}, storeErr(what, terr)
		}
		// The guard failed: the key exists, or changed since it was read.
		p, _, err := s.b.client.KV().Get(s.b.Key(req.Name), s.b.consistent(ctx))
		if err != nil {
			return election.Claim{}, storeErr(what, err)
		}
		if v := view(req.Name, p); v.leader != nil {
			return election.Claim{}, v.takenErr(what)
		}
		vacant = p // nil when the key vanished meanwhile
	}
	return election.Claim{}, fmt.Errorf("consul: %s: %w: the key changed under %d attempts", what, election.ErrUnavailable, maxRounds)
}

// Renew renews the Consul session, which extends every claim it holds,
// and finds the claims the store no longer holds for this owner without
// reading their keys: two small requests per call, whatever the number of
// claims.
//
//   - One session/renew.
//   - One consistent read of the session's marker key. The marker is locked
//     by the session, and a release by token through any other session
//     deletes the holder's marker in the transaction that deletes the
//     claim's key (see Release). An intact marker therefore proves that no
//     claim this session made was released elsewhere; a missing or
//     rewritten one makes Renew lock it again and then read every claim's
//     key (consistent read-only transactions of up to 64 keys), once.
//   - A claim this session did not make (or made with another token or
//     fence) is not held by it; one it never heard of is read.
//   - A claim whose key the shared watches show deleted after the claim,
//     or written since by another session or with another token (a write
//     that bypassed this package), is reported as soon as a watch saw it.
//
// A session expiry or destroy ends the session itself: ErrSessionExpired.
// The read comes after the renewal, so a claim reported renewed was held
// when the renewal was applied.
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
	s.dropForeign(ctx)
	if len(claims) == 0 {
		return nil
	}
	lost := make([]bool, len(claims))
	unknown := make([]bool, len(claims)) // claims this session has no record of
	var nUnknown int
	s.mu.Lock()
	marker := s.marker
	for i, c := range claims {
		switch m, ok := s.made[c.Name]; {
		case !ok:
			unknown[i] = true
			nUnknown++
		case m.token != c.Token || m.fence != c.Fence:
			lost[i] = true
		}
	}
	s.mu.Unlock()
	if nUnknown < len(claims) {
		if marker == 0 {
			return s.recheck(ctx, claims) // no marker yet: nothing to go by
		}
		p, _, err := s.b.client.KV().Get(s.b.markerKey(s.id), s.b.consistent(ctx))
		if err != nil {
			return storeErr("renew: read the session marker", err)
		}
		if p == nil || p.Session != s.id || p.ModifyIndex != marker {
			return s.recheck(ctx, claims)
		}
	}
	var subset []election.Claim
	for i, c := range claims {
		switch {
		case unknown[i]:
			subset = append(subset, c)
		case !lost[i] && s.b.watches.lostByWatch(c, s.id):
			lost[i] = true
			s.forget(c.Name, c.Token)
		}
	}
	if len(subset) > 0 {
		held, err := s.held(ctx, subset)
		if err != nil {
			return storeErr("renew: read claims", err)
		}
		k := 0
		for i := range claims {
			if unknown[i] {
				lost[i] = !held[k]
				k++
			}
		}
	}
	return notOwner(claims, lost)
}

// recheck runs when the session's marker shows that a claim of this
// session may have been released elsewhere: it locks the marker again, so
// that a release after this point shows next time, then reads every
// claim's key.
func (s *session) recheck(ctx context.Context, claims []election.Claim) error {
	ok, resp, _, err := s.b.client.Txn().Txn(api.TxnOps{s.markerOp()}, s.b.query(ctx))
	switch {
	case err != nil:
		return storeErr("renew: lock the session marker", err)
	case !ok && txnError(resp.Errors).failed(-1, "invalid session"):
		return s.confirmExpired(ctx)
	case !ok:
		return storeErr("renew: lock the session marker", txnError(resp.Errors))
	}
	s.markerWritten(resp.Results)
	held, err := s.held(ctx, claims)
	if err != nil {
		return storeErr("renew: read claims", err)
	}
	lost := make([]bool, len(claims))
	for i, c := range claims {
		if !held[i] {
			lost[i] = true
			s.forget(c.Name, c.Token)
		}
	}
	return notOwner(claims, lost)
}

// notOwner returns a *election.NotOwnerError listing the claims marked
// lost, or nil.
func notOwner(claims []election.Claim, lost []bool) error {
	var out []election.Claim
	for i, c := range claims {
		if lost[i] {
			out = append(out, c)
		}
	}
	if len(out) > 0 {
		return &election.NotOwnerError{Claims: out}
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

// held reads the keys of claims with consistent read-only transactions of
// up to maxTxnOps keys and reports, per claim, whether its key is locked by
// this session and holds its token.
func (s *session) held(ctx context.Context, claims []election.Claim) ([]bool, error) {
	out := make([]bool, 0, len(claims))
	for chunk := range slices.Chunk(claims, maxTxnOps) {
		names := make([]string, len(chunk))
		for i, c := range chunk {
			names[i] = c.Name
		}
		keys, err := s.readKeys(ctx, names)
		if err != nil {
			return nil, err
		}
		for i, c := range chunk {
			p := keys[i]
			v := view(c.Name, p)
			out = append(out, v.leader != nil && v.foreign == nil && p.Session == s.id && v.token == c.Token)
		}
	}
	return out, nil
}

// Release deletes the election key if its value holds c.Token. For a claim
// this session made, one transaction checks that the key's ModifyIndex is
// still c.Fence and deletes it; otherwise it reads the key, compares the
// token and runs that transaction on the ModifyIndex it read, so nothing
// changes unless the key is exactly the one read. That transaction also
// deletes the marker of the session that held the key, if it is another
// one, so that the holder's next Renew learns of it (see Renew). It returns
// an error wrapping [election.ErrNotOwner] when the key is absent, vacant or
// holds another token. The session's other claims are not affected.
func (s *session) Release(ctx context.Context, c election.Claim) error {
	what := fmt.Sprintf("release %q", c.Name)
	if err := s.b.check(c.Name); err != nil {
		return err
	}
	defer s.busy(c.Name)()
	if s.takeMade(c) {
		// This session made c, and nothing rewrites a held key: if its
		// ModifyIndex is still c.Fence (the lock's index), it is that claim.
		// One transaction releases it (the handoff's critical path).
		deleted, err := s.deleteAt(ctx, c.Name, c.Fence, s.id, "")
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
		v := view(c.Name, p)
		if v.leader == nil || v.foreign != nil || v.token != c.Token {
			return fmt.Errorf("consul: %s: %w", what, election.ErrNotOwner)
		}
		holder := p.Session
		if holder == s.id {
			holder = "" // this session's own claim: no marker to clear
		}
		deleted, err := s.deleteAt(ctx, c.Name, p.ModifyIndex, p.Session, holder)
		if err != nil {
			return storeErr(what, err)
		}
		if deleted {
			s.forget(c.Name, c.Token)
			return nil
		}
		// The key changed or vanished since it was read: read it again.
	}
	return fmt.Errorf("consul: %s: %w: the key changed under %d attempts", what, election.ErrUnavailable, maxRounds)
}

// deleteAt deletes election name's key in one transaction if its
// ModifyIndex is index and session owner locks it, and with it the marker
// of session holder unless holder is "" (Consul deletes a missing key
// without complaint). It reports false, with no error, when the key has
// another index or lock, or is gone. The lock check is what tells a claim
// from another one at the same index after a server lost its data and
// Raft indexes started again: a session's ID is a UUID.
//
// Not KV().DeleteCAS: Consul reports a CAS delete of a key that is already
// gone as a success, so two racing releases of one claim would both
// succeed. A check-index guard fails on a missing key.
func (s *session) deleteAt(ctx context.Context, name string, index uint64, owner, holder string) (bool, error) {
	guard := s.b.kvOp(api.KVCheckIndex, name)
	guard.KV.Index = index
	locked := s.b.kvOp(api.KVCheckSession, name)
	locked.KV.Session = owner
	ops := api.TxnOps{guard, locked, s.b.kvOp(api.KVDelete, name)}
	if holder != "" {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: s.b.markerKey(holder),
			Namespace: s.b.s.namespace, Partition: s.b.s.partition}})
	}
	ok, resp, _, err := s.b.client.Txn().Txn(ops, s.b.query(ctx))
	switch {
	case err != nil:
		return false, err
	case ok:
		return true, nil
	}
	if terr := txnError(resp.Errors); !terr.failed(0, "") && !terr.failed(1, "") {
		return false, terr
	}
	return false, nil
}

// Close ends every claim of the session and destroys it: it first deletes
// the keys of the claims the session made, in transactions of up to 32
// claims that delete a key only while this session locks it (see
// endClaims), which starts no lock-delay; then it destroys the Consul
// session, and Consul deletes every key it still holds (behavior "delete"),
// those under the session's lock-delay. Watchers see the elections vacant.
// The caller must be done with the claims: the core closes a session once
// every handler of its claims has returned, or once the store has ended
// the session (which deleted its keys; Close then only destroys it, a
// no-op). Close is idempotent; a session already gone counts as closed.
func (s *session) Close(ctx context.Context) error {
	if s.isClosed() {
		return nil
	}
	// Whatever the outcome, the caller is done with the session: its keys
	// are no longer this backend's to clean up (foreign.go).
	s.b.unregister(s)
	if s.b.life.Err() != nil {
		return errClosed
	}
	s.endClaims(ctx)
	if _, err := s.b.client.Session().Destroy(s.id, s.b.write(ctx)); err != nil && !strings.Contains(err.Error(), "Unknown session") {
		return storeErr("close session", err)
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// lockDelayed is the error of a claim that Consul refused because a
// lock-delay is in effect on the key: no one holds the election, and the
// core claims again once this session's own lock-delay has passed (the
// delay began at most that long ago when the electors of the election share
// their Config; Consul does not say when it ends). Before that, a watch
// event showing a holder ends the wait.
func (s *session) lockDelayed(name string) error {
	return fmt.Errorf("consul: claim %q: the previous holder's lock-delay is in effect: %w", name,
		&election.TakenError{Holder: election.Leader{Election: name}, ExpiresIn: max(s.lockDelay, time.Second)})
}
