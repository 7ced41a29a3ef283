package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/electionkit/election"
)

// histClient is one client of the run: a node, one session at a time and
// what it believes it holds.
type histClient struct {
	r   *historyRun
	id  int
	n   *node
	rng *rand.Rand

	sess    election.Session
	session int   // the session's number in the history
	opened  int64 // when its OpenSession was called

	mine   *election.Claim // the claim it made and believes the store has
	queued bool            // mine waits in line, as far as it knows

	stallFrom int  // from this operation on, the client stalls once it holds the election
	stalled   bool // it did
}

func (c *histClient) run(ops int) {
	e := c.r.e
	ttl := e.timing.TTL
	for op := 0; op < ops && e.ctx.Err() == nil; op++ {
		if !c.stalled && op >= c.stallFrom && c.mine != nil && !c.queued {
			// Stop renewing until the store must have expired the claim.
			c.stalled = true
			c.r.stalls.Add(1)
			time.Sleep(ttl + e.timing.ExpiryLag + ttl/2)
		}
		if !c.do(c.pick(op)) {
			return
		}
		time.Sleep(time.Duration(c.rng.Int64N(int64(ttl / 10))))
	}
}

// pick chooses the next operation from what the client believes.
func (c *histClient) pick(op int) histIn {
	in := histIn{session: c.session, opened: c.opened}
	claim := func() histIn {
		in.kind, in.token = opClaim, fmt.Sprintf("c%d-s%d-op%d", c.id, c.session, op)
		if c.mine == nil && c.r.e.caps.Queue && c.rng.IntN(2) == 0 {
			in.kind = opEnqueue // never a second claim of one client in line
		}
		return in
	}
	renew := func(token string) histIn { in.kind, in.token = opRenew, token; return in }
	release := func(token string) histIn { in.kind, in.token = opRelease, token; return in }
	leader := func() histIn { in.kind = opLeader; return in }
	p := c.rng.IntN(100)
	switch {
	case c.mine == nil:
		switch {
		case p < 45:
			return claim()
		case p < 65:
			return renew("")
		case p < 80:
			return release(c.r.someToken(c.rng))
		}
	case c.queued:
		// Like the core, a client in line renews its session, not the
		// claim, and learns from a leader read that it holds.
		switch {
		case p < 10:
			return claim()
		case p < 35:
			return renew("")
		case p < 50:
			return release(c.mine.Token)
		case p < 60:
			return release(c.r.someToken(c.rng))
		}
	default:
		switch {
		case p < 15:
			return claim()
		case p < 50:
			return renew(c.mine.Token)
		case p < 65:
			return release(c.mine.Token)
		case p < 75:
			return release(c.r.someToken(c.rng))
		}
	}
	return leader()
}

// do performs in, records it and learns from its outcome. It reports
// false after an error no correct store returns here (the test failed).
func (c *histClient) do(in histIn) bool {
	in.call = c.r.now()
	out, skip, err := c.perform(in)
	in.ret = c.r.now()
	if err != nil {
		c.r.e.t.Errorf("client %d, session %d, %v(%s): %v", c.id, in.session, in.kind, in.token, err)
		return false
	}
	if skip {
		return true
	}
	c.r.record(c.id, in, out)
	mineToken := ""
	if c.mine != nil {
		mineToken = c.mine.Token
	}
	switch {
	case out.result == resExpired:
		return c.reopen()
	case (in.kind == opClaim || in.kind == opEnqueue) && out.result == resOK:
		c.mine = &election.Claim{Name: historyName, Token: in.token, Fence: out.fence}
		c.queued = out.queued
	case (in.kind == opRenew || in.kind == opRelease) && in.token != "" && in.token == mineToken:
		if in.kind == opRelease || out.result == resRefused {
			c.mine = nil
		}
	case in.kind == opLeader && c.mine != nil && out.result == resOK && out.holderFence == c.mine.Fence:
		c.queued = false
	}
	return true
}

// perform runs in against the store. skip reports a claim refused with no
// holder (a store that refuses claims for a while: Consul's lock-delay
// after a session ended, Timing.ClaimDelay; Redis's restart quarantine),
// which changes nothing and is left out of the history.
func (c *histClient) perform(in histIn) (out histOut, skip bool, err error) {
	ctx := c.r.e.ctx
	var taken *election.TakenError
	req := election.ClaimRequest{Name: historyName, Token: in.token, ID: in.token}
	switch in.kind {
	case opClaim:
		cl, err := c.sess.Claim(ctx, req)
		switch {
		case err == nil:
			return histOut{result: resOK, fence: cl.Fence}, false, nil
		case refusedNoHolder(err):
			return histOut{}, true, nil
		case errors.As(err, &taken):
			return histOut{result: resRefused, holder: taken.Holder.ID, holderFence: taken.Holder.Fence}, false, nil
		}
		return outcomeOf(err)
	case opEnqueue:
		cl, holder, err := c.sess.(election.Queuer).Enqueue(ctx, req)
		switch {
		case err == nil && holder == nil:
			return histOut{result: resOK, fence: cl.Fence}, false, nil
		case err == nil:
			return histOut{result: resOK, fence: cl.Fence, queued: true, holder: holder.ID, holderFence: holder.Fence}, false, nil
		}
		return outcomeOf(err)
	case opRenew:
		var claims []election.Claim
		if in.token != "" {
			claims = []election.Claim{*c.mine}
		}
		return outcomeOf(c.sess.Renew(ctx, claims))
	case opRelease:
		cl := election.Claim{Name: historyName, Token: in.token}
		if c.mine != nil && c.mine.Token == in.token {
			cl = *c.mine
		}
		return outcomeOf(c.sess.Release(ctx, cl))
	default:
		l, err := c.n.b.Leader(ctx, historyName)
		switch {
		case err == nil:
			return histOut{result: resOK, holder: l.ID, holderFence: l.Fence}, false, nil
		case errors.Is(err, election.ErrNoLeader):
			return histOut{result: resRefused}, false, nil
		}
		return histOut{}, false, err
	}
}

// outcomeOf maps the error of a claim, enqueue, renew or release to its
// result; any error but "not owner" and "session expired" is returned.
func outcomeOf(err error) (histOut, bool, error) {
	switch {
	case err == nil:
		return histOut{result: resOK}, false, nil
	case errors.Is(err, election.ErrSessionExpired):
		return histOut{result: resExpired}, false, nil
	case errors.Is(err, election.ErrNotOwner):
		return histOut{result: resRefused}, false, nil
	}
	return histOut{}, false, err
}

// reopen replaces the client's session (at the start, or after the store
// expired it) with a new one. It reports false if that failed (the test
// failed).
func (c *histClient) reopen() bool {
	e := c.r.e
	if c.sess != nil {
		ctx, cancel := context.WithTimeout(e.ctx, e.timing.TTL)
		_ = c.sess.Close(ctx) // already gone on the store
		cancel()
	}
	c.mine, c.queued = nil, false
	opened := c.r.now()
	s, err := c.n.b.OpenSession(e.ctx, e.timing.TTL)
	if err == nil {
		err = e.queuerMismatch(s)
	}
	if err != nil {
		e.t.Errorf("client %d: OpenSession: %v", c.id, err)
		return false
	}
	c.sess, c.session, c.opened = s, int(c.r.sessions.Add(1)-1), opened
	return true
}

// finish releases what the client believes it holds (recorded like any
// operation) and closes its session.
func (c *histClient) finish() {
	if c.mine != nil {
		c.do(histIn{kind: opRelease, session: c.session, opened: c.opened, token: c.mine.Token})
	}
	ctx, cancel := context.WithTimeout(c.r.e.ctx, c.r.e.settle())
	defer cancel()
	if err := c.sess.Close(ctx); err != nil {
		c.r.e.t.Errorf("client %d: Close session: %v", c.id, err)
	}
}
