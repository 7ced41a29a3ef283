package consul

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/faultproxy"
	"github.com/electionkit/election/internal/history"
)

// operatorWorld is one election with two candidates on one agent, each
// with an elector (and so a session) of its own, recorded by a history:
// a, the first leader, reaches the agent through a fault proxy that can cut
// it off; b waits.
type operatorWorld struct {
	agent    *testAgent
	raw      *api.Client
	hist     *history.Recorder
	ttl      time.Duration
	a, b     *election.Candidate
	ba       *Backend
	aLink    *faultproxy.Proxy
	aTerm    election.Term
	election string
}

func newOperatorWorld(t *testing.T, prefix string, ttl, lockDelay time.Duration) *operatorWorld {
	t.Helper()
	return newOperatorWorldOn(t, startAgent(t, agentOptions{}), prefix, ttl, lockDelay)
}

// newOperatorWorldOn is newOperatorWorld on an agent of the caller's; the
// candidates use the agent's management token.
func newOperatorWorldOn(t *testing.T, agent *testAgent, prefix string, ttl, lockDelay time.Duration) *operatorWorld {
	t.Helper()
	w := &operatorWorld{agent: agent, raw: agent.client(t), hist: history.New(time.Now), ttl: ttl, election: "operator"}
	var clients faultproxy.Clients
	t.Cleanup(func() { _ = clients.CloseAll() })
	configure := func(c *Config) { c.Prefix, c.LockDelay = prefix, lockDelay }
	viaProxy, link, err := clients.Dial(agent.addr, func(addr string) (election.Backend, error) {
		cfg := Config{Address: addr, Token: agent.token, MinTTL: testMinTTL, WatchWait: 5 * time.Second}
		configure(&cfg)
		return New(cfg)
	})
	if err != nil {
		t.Fatal(err)
	}
	w.ba, w.aLink = viaProxy.(*Backend), link
	w.a = w.candidate(t, w.ba, "a")
	waitFor(t, 20*time.Second, "a to lead", w.a.IsLeader)
	w.aTerm, _ = w.a.Term()
	w.b = w.candidate(t, agent.backend(t, configure), "b")
	return w
}

func (w *operatorWorld) candidate(t *testing.T, b *Backend, id string) *election.Candidate {
	t.Helper()
	el, err := election.New(b, election.Config{TTL: w.ttl, OnEvent: w.hist.OnEvent(id)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.aLink.Heal(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), 2*w.ttl+5*time.Second)
		defer cancel()
		_ = el.Close(ctx)
	})
	c, err := el.NewCandidate(election.CandidateConfig{Name: w.election, ID: id, Handlers: []election.Handler{w.hist.Handler(id)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c
}

// cutA partitions a from its agent: it hears nothing more, neither its
// watch nor its renewals.
func (w *operatorWorld) cutA(t *testing.T) {
	t.Helper()
	if err := w.aLink.Cut(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// aSession is the session that locks a's claim, read by the operator.
func (w *operatorWorld) aSession(t *testing.T) string {
	t.Helper()
	p := rawKey(t, w.raw, w.ba, w.election)
	if p == nil || p.Session == "" || p.ModifyIndex != w.aTerm.Fence {
		t.Fatalf("key of a's term = %+v, want locked at fence %d", p, w.aTerm.Fence)
	}
	return p.Session
}

// nextTerm waits for a term with a fence above a's and for a's handler to
// have returned, and returns the new term and a's and its handler runs.
func (w *operatorWorld) nextTerm(t *testing.T) (next election.Term, aRun, nextRun history.Run) {
	t.Helper()
	waitFor(t, 30*time.Second, "a new term after the operator's action", func() bool {
		for _, c := range []*election.Candidate{w.a, w.b} {
			if term, ok := c.Term(); ok && term.Fence > w.aTerm.Fence {
				next = term
				return true
			}
		}
		return false
	})
	waitFor(t, 3*w.ttl, "a's handler to return", func() bool {
		var ok1, ok2 bool
		for _, r := range w.hist.Runs() {
			if r.Fence == w.aTerm.Fence && r.Candidate == "a" && !r.End.IsZero() {
				aRun, ok1 = r, true
			}
			if r.Fence == next.Fence && r.Candidate == next.ID {
				nextRun, ok2 = r, true
			}
		}
		return ok1 && ok2
	})
	return next, aRun, nextRun
}

// aLoss returns the reason a's elector gave for losing a's term.
func (w *operatorWorld) aLoss(t *testing.T) election.LossReason {
	t.Helper()
	for _, ev := range w.hist.Events() {
		if ev.Process == "a" && ev.Kind == election.EventLost && ev.Fence == w.aTerm.Fence {
			return ev.Reason
		}
	}
	t.Fatalf("no EventLost for a's term (fence %d)", w.aTerm.Fence)
	return ""
}

// termAbove waits for a term of the election with a fence above fence.
func (w *operatorWorld) termAbove(t *testing.T, fence uint64, after string) election.Term {
	t.Helper()
	var next election.Term
	waitFor(t, 30*time.Second, "a new term after "+after, func() bool {
		for _, c := range []*election.Candidate{w.a, w.b} {
			if term, ok := c.Term(); ok && term.Fence > fence {
				next = term
				return true
			}
		}
		return false
	})
	return next
}

// aRenewFoundSessionGone reports whether a's elector reported a renewal
// failing with ErrSessionExpired before a lost its term. The core then
// moves the term's deadline to that moment, and its timer may report the
// loss first, with reason deadline: a race in the reason, not the timing.
func (w *operatorWorld) aRenewFoundSessionGone() bool {
	for _, ev := range w.hist.Events() {
		switch {
		case ev.Process != "a":
		case ev.Kind == election.EventRenewFailed && errors.Is(ev.Err, election.ErrSessionExpired):
			return true
		case ev.Kind == election.EventLost && ev.Fence == w.aTerm.Fence:
			return false
		}
	}
	return false
}

// reportExceptOverlap reports every violation of the history but the
// overlap of the two terms, which the README allows for this action.
func (w *operatorWorld) reportExceptOverlap(t *testing.T) {
	t.Helper()
	for _, v := range w.hist.Check(history.Bounds{}) {
		if v.Property == "exclusion" {
			t.Logf("an overlap the README allows for this action: %v", v)
			continue
		}
		t.Errorf("%v", v)
	}
}

// checkCutOffOverlap checks the overlap README documents when the leader
// a is cut off from its agent as its term is ended behind its back at
// since: b is elected at once, while a leads until its deadline.
func (w *operatorWorld) checkCutOffOverlap(t *testing.T, what string, since time.Time) {
	t.Helper()
	next, aRun, nextRun := w.nextTerm(t)
	if next.ID != "b" {
		t.Fatalf("%s: %s elected, want b (a is cut off)", what, next.ID)
	}
	if reason := w.aLoss(t); reason != election.LossDeadline {
		t.Errorf("%s: a lost its term with reason %q, want %q", what, reason, election.LossDeadline)
	}
	overlap := aRun.End.Sub(nextRun.Start)
	t.Logf("%s: b elected %v later, a's handler returned %v after that (TTL %v)", what, nextRun.Start.Sub(since), overlap, w.ttl)
	if overlap <= 0 {
		t.Errorf("%s: b elected %v after a stepped down: the overlap the README documents did not happen", what, -overlap)
	}
	w.reportExceptOverlap(t)
}

func destroySession(t *testing.T, raw *api.Client, id string) {
	t.Helper()
	if _, err := raw.Session().Destroy(id, nil); err != nil { // PUT /v1/session/destroy/<id>
		t.Fatalf("session destroy %s: %v", id, err)
	}
}

// TestOperatorActions: what an operator can do through Consul's HTTP API
// to a held election, and what the library does then (README: "What can
// go wrong", "What it cannot promise"). Each subtest has two candidates
// of one election, a (the leader) and b, under the history checker.
//   - DestroySession: the leader steps down at once, on the store's word
//     (its watch or its renewal), not at its deadline; a new term has a
//     greater fence. The two terms may overlap by one watch return.
//   - DestroySessionCutOff: with NoLockDelay and the leader cut off from
//     its agent, b is elected at once while a leads until its deadline:
//     the window the lock-delay closes.
//   - DestroySessionLockDelay: the same with the default lock-delay (the
//     TTL): nobody is elected before the lock-delay has passed, by when the
//     cut-off leader has stepped down; no overlap.
//   - DeregisterSessionNode: the session node deregistered (every session
//     of the prefix ends, b's too) with the leader cut off and LockDelay =
//     TTL: no overlap, and the electors register the node again and elect.
//   - DeleteKey: the leader steps down when its watch shows the delete; a
//     new term has a greater fence. The two terms may overlap by one watch
//     return.
//   - DeleteKeyCutOff: with the leader cut off, b is elected at once while
//     a leads until its deadline (no lock-delay applies to a deleted key).
//   - CandidateToken: on an agent with ACLs, a token with only the
//     candidate grants of the prefix (README "Trust model") destroys the
//     leader's session, deletes the next leader's key and deregisters the
//     session node, each ending the term then held.
func TestOperatorActions(t *testing.T) {
	const ttl = 4 * time.Second
	t.Run("DestroySession", func(t *testing.T) {
		w := newOperatorWorld(t, "op-destroy", ttl, 0)
		destroySession(t, w.raw, w.aSession(t))
		next, aRun, nextRun := w.nextTerm(t)
		if reason := w.aLoss(t); reason == election.LossDeadline && !w.aRenewFoundSessionGone() {
			t.Errorf("a stepped down at its deadline (reason %q), not when the store showed the destroyed session", reason)
		}
		overlap := max(0, aRun.End.Sub(nextRun.Start))
		t.Logf("session destroyed: a lost its term (%q); %s elected with fence %d > %d; overlap %v",
			w.aLoss(t), next.ID, next.Fence, w.aTerm.Fence, overlap)
		w.reportExceptOverlap(t)
	})
	t.Run("DestroySessionCutOff", func(t *testing.T) {
		w := newOperatorWorld(t, "op-destroy-cut", ttl, NoLockDelay)
		id := w.aSession(t)
		w.cutA(t)
		destroyed := time.Now()
		destroySession(t, w.raw, id)
		w.checkCutOffOverlap(t, "session of cut-off a destroyed", destroyed)
	})
	t.Run("DestroySessionLockDelay", func(t *testing.T) {
		w := newOperatorWorld(t, "op-destroy-delay", ttl, 0) // the default: LockDelay = TTL
		id := w.aSession(t)
		w.cutA(t)
		destroyed := time.Now()
		destroySession(t, w.raw, id)
		next, aRun, nextRun := w.nextTerm(t)
		t.Logf("session of cut-off a destroyed, lock-delay %v: a stepped down %v after, %s elected %v after (fence %d > %d)",
			ttl, aRun.End.Sub(destroyed), next.ID, nextRun.Start.Sub(destroyed), next.Fence, w.aTerm.Fence)
		if nextRun.Start.Before(destroyed.Add(ttl)) {
			t.Errorf("%s elected %v after the destroy, within the lock-delay of %v", next.ID, nextRun.Start.Sub(destroyed), ttl)
		}
		w.hist.Report(t, history.Bounds{})
	})
	t.Run("DeregisterSessionNode", func(t *testing.T) {
		w := newOperatorWorld(t, "op-deregister", ttl, ttl)
		node := w.ba.SessionNode()
		w.cutA(t)
		deregistered := time.Now()
		// PUT /v1/catalog/deregister, as `consul catalog deregister` would.
		if _, err := w.raw.Catalog().Deregister(&api.CatalogDeregistration{Node: node}, nil); err != nil {
			t.Fatal(err)
		}
		if sessions, _, err := w.raw.Session().Node(node, nil); err != nil || len(sessions) != 0 {
			t.Fatalf("sessions on %s after deregistering it: %d, %v; want none", node, len(sessions), err)
		}
		next, aRun, nextRun := w.nextTerm(t)
		t.Logf("session node deregistered under cut-off a, lock-delay %v: a stepped down %v after, %s elected %v after (fence %d > %d)",
			ttl, aRun.End.Sub(deregistered), next.ID, nextRun.Start.Sub(deregistered), next.Fence, w.aTerm.Fence)
		if nextRun.Start.Before(deregistered.Add(ttl)) {
			t.Errorf("%s elected %v after the deregistration, within the lock-delay of %v", next.ID, nextRun.Start.Sub(deregistered), ttl)
		}
		if nodes, _, err := w.raw.Catalog().Node(node, nil); err != nil || nodes == nil {
			t.Errorf("session node %s not registered again by the elector that was elected: %v", node, err)
		}
		w.hist.Report(t, history.Bounds{})
	})
	t.Run("DeleteKey", func(t *testing.T) {
		w := newOperatorWorld(t, "op-delete", ttl, 0)
		// DELETE /v1/kv/<key>, as `consul kv delete` would.
		if _, err := w.raw.KV().Delete(w.ba.Key(w.election), nil); err != nil {
			t.Fatal(err)
		}
		next, aRun, nextRun := w.nextTerm(t)
		if reason := w.aLoss(t); reason == election.LossDeadline {
			t.Errorf("a stepped down at its deadline (reason %q), not when its watch showed the delete", reason)
		}
		overlap := max(0, aRun.End.Sub(nextRun.Start))
		t.Logf("held key deleted: a lost its term (%q); %s elected with fence %d > %d; overlap %v",
			w.aLoss(t), next.ID, next.Fence, w.aTerm.Fence, overlap)
		w.reportExceptOverlap(t)
	})
	t.Run("CandidateToken", func(t *testing.T) {
		// README "Trust model": a token with only the candidate grants of
		// a prefix can end any claim under it, a candidate's or not.
		agent := startAgent(t, agentOptions{acl: true})
		w := newOperatorWorldOn(t, agent, "op-acl", ttl, 0)
		rules := `key_prefix "op-acl/" { policy = "write" }
node "op-acl-sessions" { policy = "write" }
session "op-acl-sessions" { policy = "write" }`
		policy, _, err := w.raw.ACL().PolicyCreate(&api.ACLPolicy{Name: "candidate", Rules: rules}, nil)
		if err != nil {
			t.Fatal(err)
		}
		token, _, err := w.raw.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: policy.ID}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg := api.DefaultNonPooledConfig()
		cfg.Address, cfg.Token = agent.addr, token.SecretID
		candidate, err := api.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}

		destroySession(t, candidate, w.aSession(t))
		afterDestroy := w.termAbove(t, w.aTerm.Fence, "the candidate token destroyed the leader's session")
		if _, err := candidate.KV().Delete(w.ba.Key(w.election), nil); err != nil {
			t.Fatalf("delete of the held key with the candidate token: %v", err)
		}
		afterDelete := w.termAbove(t, afterDestroy.Fence, "the candidate token deleted the held key")
		if _, err := candidate.Catalog().Deregister(&api.CatalogDeregistration{Node: w.ba.SessionNode()}, nil); err != nil {
			t.Fatalf("deregistration of the session node with the candidate token: %v", err)
		}
		afterDeregister := w.termAbove(t, afterDelete.Fence, "the candidate token deregistered the session node")
		t.Logf("with the candidate grants only: a's term (fence %d) ended by a session destroy, %s's (%d) by a key delete, %s's (%d) by the node's deregistration; then %s (%d)",
			w.aTerm.Fence, afterDestroy.ID, afterDestroy.Fence, afterDelete.ID, afterDelete.Fence, afterDeregister.ID, afterDeregister.Fence)
		w.reportExceptOverlap(t)
	})
	t.Run("DeleteKeyCutOff", func(t *testing.T) {
		w := newOperatorWorld(t, "op-delete-cut", ttl, ttl)
		w.cutA(t)
		deleted := time.Now()
		if _, err := w.raw.KV().Delete(w.ba.Key(w.election), nil); err != nil {
			t.Fatal(err)
		}
		w.checkCutOffOverlap(t, "held key of cut-off a deleted (a lock-delay of TTL, which a delete does not start)", deleted)
	})
}
