package consul

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

var _ election.SessionEnder = (*session)(nil)

// EndsClaims reports true: Close deletes the keys of the claims the
// session made in batched transactions, which starts no lock-delay, and
// then destroys the session, which deletes whatever else it holds (behavior
// "delete"); watchers see the deletions as they see releases.
func (s *session) EndsClaims() bool { return true }

// endClaimsPerTxn is the number of claims one transaction of endClaims
// deletes: a check-session and a delete each, within Consul's 64 operations.
const endClaimsPerTxn = maxTxnOps / 2

// endParallel is the number of endClaims transactions in flight at once:
// Consul's Raft commits concurrent writes together. Ending 10,000 claims
// (313 transactions) on a loopback test server at load 1.5 to 3 took 1.25s
// with 4 in flight (and ran out of the 1.25s it gets at the default TTL,
// leaving 1,744 keys to the destroy), 1.05s with 8, 1.12s with 16 and
// 1.01s with 32: the server is the limit from 8 on.
const endParallel = 8

// endingClaim is a claim endClaims deletes: the key of election name, if
// this session still locks it; token is the claim's, for forget.
type endingClaim struct{ name, token string }

// endClaims deletes the key of every claim this session made and still
// holds, before Close destroys the session, so that their elections can be
// claimed at once. Destroying a session with a lock-delay keeps every key
// it holds then from being locked again for the lock-delay (Consul's
// sessions documentation: "when a session invalidation takes place, Consul
// prevents any of the previously held locks from being re-acquired for the
// lock-delay interval"; the state store applies it in the session's
// deletion, to the keys locked by the session, and nowhere else). A KV
// delete is no invalidation and starts no lock-delay, as the one-by-one
// Release already relies on.
//
// Each transaction checks, per claim, that this session still locks the
// key (check-session on the session's ID) and deletes it, up to
// endClaimsPerTxn claims: exactly the keys the Destroy would delete, minus
// the lock-delay. Not a check of the claim's fence (the key's
// ModifyIndex): after a server lost its data, indexes start again, and
// another session's key could have the same index as one of this
// session's old claims; a session's ID is a UUID that no other session
// has. A transaction is all or nothing: when checks fail (the claim was
// released elsewhere, or its key deleted or taken since), the failed
// claims are dropped and the others tried again, so that no key another
// session locks is deleted. No marker is deleted: these are this
// session's own claims, and its marker goes with the Destroy.
//
// A session the store has already ended (see session.gone) has no keys
// left: endClaims sends nothing.
//
// What endClaims does not delete is left to the Destroy, under the
// lock-delay, which stays safe: a claim whose transaction got no answer
// (outcome unknown), one the session holds without knowing it made it (a
// claim whose own outcome was unknown), and whatever remains when ctx
// nears its end, since endClaims takes three quarters of the time left
// in ctx and keeps the rest for the Destroy.
func (s *session) endClaims(ctx context.Context) {
	s.mu.Lock()
	if s.gone {
		// The store ended the session and deleted its keys: a transaction
		// per 32 claims would find none of them locked by it.
		s.mu.Unlock()
		return
	}
	todo := make([]endingClaim, 0, len(s.made))
	for name, m := range s.made {
		todo = append(todo, endingClaim{name: name, token: m.token})
	}
	s.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)*3/4))
		defer cancel()
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, endParallel)
	for chunk := range slices.Chunk(todo, endClaimsPerTxn) {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			s.endChunk(ctx, chunk)
		})
	}
	wg.Wait()
}

// endChunk deletes the keys of chunk (see endClaims) and forgets the
// claims it deleted.
func (s *session) endChunk(ctx context.Context, chunk []endingClaim) {
	for len(chunk) > 0 {
		ops := make(api.TxnOps, 0, 2*len(chunk))
		for _, c := range chunk {
			guard := s.b.kvOp(api.KVCheckSession, c.name)
			guard.KV.Session = s.id
			ops = append(ops, guard, s.b.kvOp(api.KVDelete, c.name))
		}
		ok, resp, _, err := s.b.client.Txn().Txn(ops, s.b.query(ctx))
		switch {
		case err != nil:
			return // outcome unknown: left to the Destroy
		case ok:
			// Forgotten, so that a Renew after a failed Destroy does not
			// report these claims held on the strength of the marker.
			for _, c := range chunk {
				s.forget(c.name, c.token)
			}
			return
		}
		failed := make([]bool, len(chunk))
		blamed := false
		for _, te := range resp.Errors {
			if j := te.OpIndex / 2; te.OpIndex%2 == 0 && j < len(chunk) {
				failed[j], blamed = true, true
			}
		}
		if !blamed {
			// A delete failed (a token without write rights), or no
			// operation is blamed: left to the Destroy.
			return
		}
		next := make([]endingClaim, 0, len(chunk))
		for j, c := range chunk {
			if failed[j] {
				s.forget(c.name, c.token) // no longer this session's key
			} else {
				next = append(next, c)
			}
		}
		chunk = next
	}
}
