package consul

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

var _ election.ClaimBatcher = (*session)(nil)

// MaxClaimBatch returns 31: two operations per claim and the session's
// marker within Consul's 64 operations per transaction.
func (s *session) MaxClaimBatch() int { return (maxTxnOps - 1) / 2 }

// ClaimBatch makes the claims of reqs as Claim does, in one transaction
// for all of them: each claim checks that its key is absent (or unchanged
// since it was read vacant) and locks it. A transaction is all or nothing,
// so when some checks fail, one consistent read transaction looks at those
// keys: a held one is reported taken, a vacant one is tried again in the
// next transaction with the others. A burst of 10,000 claims thus costs
// Consul about 330 Raft writes instead of 10,000.
func (s *session) ClaimBatch(ctx context.Context, reqs []election.ClaimRequest) ([]election.Claim, []error) {
	claims := make([]election.Claim, len(reqs))
	errs := make([]error, len(reqs))
	if len(reqs) > s.MaxClaimBatch() {
		for i := range reqs {
			errs[i] = invalid("claims", "%d in one batch, more than %d", len(reqs), s.MaxClaimBatch())
		}
		return claims, errs
	}
	var todo []*pending
	for i, req := range reqs {
		switch {
		case s.b.check(req.Name) != nil:
			errs[i] = s.b.check(req.Name)
		case req.Token == "":
			errs[i] = invalid("Token", "empty owner token")
		case s.isClosed():
			errs[i] = s.expired(fmt.Sprintf("claim %q", req.Name))
		default:
			value, err := encodeRecord(req)
			if err != nil {
				errs[i] = invalid("Metadata", "%v", err)
				continue
			}
			defer s.busy(req.Name)()
			todo = append(todo, &pending{i: i, value: value})
		}
	}
	fail := func(todo []*pending, err func(what string) error) {
		for _, p := range todo {
			errs[p.i] = err(fmt.Sprintf("claim %q", reqs[p.i].Name))
		}
	}
	for range maxRounds {
		if len(todo) == 0 {
			return claims, errs
		}
		ops := make(api.TxnOps, 0, 2*len(todo)+1)
		for _, p := range todo {
			guard := s.b.kvOp(api.KVCheckNotExists, reqs[p.i].Name)
			if p.vacant != nil {
				guard = s.b.kvOp(api.KVCheckIndex, reqs[p.i].Name)
				guard.KV.Index = p.vacant.ModifyIndex
			}
			lock := s.b.kvOp(api.KVLock, reqs[p.i].Name)
			lock.KV.Value, lock.KV.Session = p.value, s.id
			ops = append(ops, guard, lock)
		}
		s.mu.Lock()
		if s.marker == 0 {
			ops = append(ops, s.markerOp())
		}
		s.mu.Unlock()
		ok, resp, _, err := s.b.client.Txn().Txn(ops, s.b.query(ctx))
		if err != nil {
			fail(todo, func(what string) error { return storeErr(what, err) })
			return claims, errs
		}
		if ok {
			s.markerWritten(resp.Results)
			for _, p := range todo {
				req, key := reqs[p.i], s.b.Key(reqs[p.i].Name)
				errs[p.i] = storeErr(fmt.Sprintf("claim %q", req.Name), errors.New("transaction succeeded without the lock's result"))
				for _, r := range resp.Results {
					if r.KV != nil && r.KV.Key == key && r.KV.Session == s.id {
						claims[p.i], errs[p.i] = s.remember(election.Claim{Name: req.Name, Token: req.Token, Fence: r.KV.ModifyIndex}), nil
						break
					}
				}
			}
			return claims, errs
		}
		terr := txnError(resp.Errors)
		if terr.failed(-1, "invalid session") {
			fail(todo, s.expired)
			return claims, errs
		}
		if terr.failed(-1, "Permission denied") {
			fail(todo, func(what string) error { return storeErr(what, terr) })
			return claims, errs
		}
		// Sort the claims by how their operations failed: a failed check
		// needs a read; a lock refused for its lock-delay, or anything
		// else, ends that claim.
		var check []*pending
		failed := map[int]bool{}
		for _, te := range resp.Errors {
			j := te.OpIndex / 2
			if j >= len(todo) || failed[j] {
				continue
			}
			failed[j] = true
			p, what := todo[j], fmt.Sprintf("claim %q", reqs[todo[j].i].Name)
			switch {
			case te.OpIndex%2 == 0:
				check = append(check, p)
			case terr.failed(te.OpIndex, "lock delay"):
				errs[p.i] = s.lockDelayed(reqs[p.i].Name)
			default:
				errs[p.i] = storeErr(what, terr)
			}
		}
		if len(failed) == 0 {
			// The transaction failed with no claim's operation to blame
			// (the marker's): no claim was made.
			fail(todo, func(what string) error { return storeErr(what, terr) })
			return claims, errs
		}
		var next []*pending
		for j, p := range todo {
			if !failed[j] {
				next = append(next, p)
			}
		}
		if len(check) > 0 {
			names := make([]string, len(check))
			for k, p := range check {
				names[k] = reqs[p.i].Name
			}
			views, err := s.readKeys(ctx, names)
			if err != nil {
				fail(check, func(what string) error { return storeErr(what, err) })
			} else {
				for k, p := range check {
					if v := view(reqs[p.i].Name, views[k]); v.leader != nil {
						errs[p.i] = v.takenErr(fmt.Sprintf("claim %q", reqs[p.i].Name))
						continue
					}
					p.vacant = views[k] // nil when the key vanished meanwhile
					next = append(next, p)
				}
			}
		}
		todo = next
	}
	fail(todo, func(what string) error {
		return fmt.Errorf("consul: %s: %w: the key changed under %d attempts", what, election.ErrUnavailable, maxRounds)
	})
	return claims, errs
}

// pending is a claim of a batch that is still to be made.
type pending struct {
	i      int // its index in the batch
	value  []byte
	vacant *api.KVPair // the key as last read, present but held by no session
}

// readKeys reads the election keys of names in one consistent read
// transaction; an absent key reads as nil.
func (s *session) readKeys(ctx context.Context, names []string) ([]*api.KVPair, error) {
	ops := make(api.TxnOps, len(names))
	for k, name := range names {
		ops[k] = s.b.kvOp(api.KVGetOrEmpty, name)
	}
	ok, resp, _, err := s.b.client.Txn().Txn(ops, s.b.consistent(ctx))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, txnError(resp.Errors)
	}
	byKey := make(map[string]*api.KVPair, len(resp.Results))
	for _, r := range resp.Results {
		if r.KV != nil && r.KV.ModifyIndex != 0 {
			byKey[r.KV.Key] = r.KV
		}
	}
	views := make([]*api.KVPair, len(names))
	for k, name := range names {
		views[k] = byKey[s.b.Key(name)]
	}
	return views, nil
}
