package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/electionkit/election"
)

// historyName is the election LinearizableHistory runs on.
const historyName = "linearizable"

// testLinearizable: concurrent clients claim (with Capabilities.Queue also
// enqueue), renew, release (their own claims and, by token, each other's)
// and read one election on the raw Backend, with the suite's short TTL;
// each client once stops renewing while it holds the election, long enough
// for its claim to expire, and any client may let its session lapse
// between operations. Two watchers record what they see.
//
// porcupine checks the history against historyModel, which allows a holder
// (or a claim in line) to vanish only if the store could have expired it,
// a TTL after its session's last OpenSession or renewal call; checkWatch
// checks each watcher's stream; and both watchers must show a last claim
// made after every client stopped. A failure prints the history: it means
// two holders at once, a claim lost early, a line out of order, a fence
// that did not increase, or a watch that reported a term that never was,
// reordered terms or stopped reporting.
func testLinearizable(e *env) {
	const clients, opsPerClient, watchers = 4, 60, 2
	r := &historyRun{e: e, start: time.Now()}
	wctx, stopWatching := context.WithCancel(e.ctx)
	var (
		ws    []*histWatcher
		wwait sync.WaitGroup
	)
	defer func() {
		stopWatching()
		wwait.Wait()
	}()
	for i := range watchers {
		w := &histWatcher{r: r, n: e.newNode(fmt.Sprintf("watch-%d", i))}
		ws = append(ws, w)
		wwait.Add(1)
		go func() {
			defer wwait.Done()
			w.run(wctx)
		}()
	}
	for _, w := range ws {
		e.waitFor(e.settle(), "the watches to start", func() bool { return w.count() > 0 })
	}

	var (
		cs []*histClient
		wg sync.WaitGroup
	)
	for i := range clients {
		c := &histClient{r: r, id: i, n: e.newNode(fmt.Sprintf("lin-%d", i)), rng: rand.New(rand.NewPCG(uint64(i), uint64(r.start.UnixNano())))}
		c.stallFrom = opsPerClient/6 + c.rng.IntN(opsPerClient/2)
		if !c.reopen() {
			return
		}
		cs = append(cs, c)
	}
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(opsPerClient)
		}()
	}
	wg.Wait()
	if e.t.Failed() {
		return
	}
	for _, c := range cs {
		c.finish()
	}
	if e.t.Failed() {
		return
	}
	history := r.operations()
	res, _ := porcupine.CheckOperationsVerbose(historyModel(e.timing.TTL), history, time.Minute)
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		e.t.Fatalf("porcupine could not decide within a minute whether the history of %d operations is linearizable\n%s", len(history), describeHistory(history))
	default:
		e.t.Fatalf("history of %d operations is not linearizable against the election model\n%s", len(history), describeHistory(history))
	}
	final := r.finalClaim(ws)
	stopWatching()
	wwait.Wait()
	granted := grantsOf(history)
	granted[final.Fence] = grant{token: "final", call: r.finalCall}
	for i, w := range ws {
		if problems := checkWatch(granted, w.seen); len(problems) > 0 {
			e.t.Errorf("watcher %d saw %d events; what no correct store sends:\n  %s\nhistory:\n%s",
				i, len(w.seen), strings.Join(problems, "\n  "), describeHistory(history))
		}
	}
	if r.stalls.Load() == 0 {
		e.t.Errorf("no client held the election when its stall came: the run exercised no expiry")
	}
	e.t.Logf("%d operations, %d stalls with a claim held, %d sessions, watchers saw %d and %d events",
		len(history), r.stalls.Load(), r.sessions.Load(), len(ws[0].seen), len(ws[1].seen))
}

// historyRun is the shared record of one LinearizableHistory run.
type historyRun struct {
	e     *env
	start time.Time

	sessions atomic.Int64 // sessions opened, numbering them
	stalls   atomic.Int64 // stalls taken while holding the election

	mu        sync.Mutex
	history   []porcupine.Operation
	tokens    []string // every token granted a claim, for releases by others
	finalCall int64
}

// now is the run's clock: nanoseconds since it started.
func (r *historyRun) now() int64 { return time.Since(r.start).Nanoseconds() }

func (r *historyRun) record(client int, in histIn, out histOut) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.history = append(r.history, porcupine.Operation{ClientId: client, Input: in, Call: in.call, Output: out, Return: in.ret})
	if (in.kind == opClaim || in.kind == opEnqueue) && out.result == resOK {
		r.tokens = append(r.tokens, in.token)
	}
}

func (r *historyRun) operations() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.history)
}

// someToken returns a token some client was granted a claim with.
func (r *historyRun) someToken(rng *rand.Rand) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.tokens) == 0 {
		return "never-granted"
	}
	return r.tokens[rng.IntN(len(r.tokens))]
}

// finalClaim waits, once every client has released what it held, for the
// election to be vacant, claims it through a fresh session and waits for
// every watcher to show that claim: a watch that stopped reporting fails
// here.
func (r *historyRun) finalClaim(ws []*histWatcher) election.Claim {
	e := r.e
	n := e.newNode("final")
	from := time.Now()
	e.awaitExpiry("the last claims of the run", from, 0, e.timing.TTL, func() bool {
		_, err := n.b.Leader(e.ctx, historyName)
		if err != nil && !errors.Is(err, election.ErrNoLeader) {
			e.t.Fatalf("Leader after the run: %v", err)
		}
		return err != nil
	})
	s := e.openSession(n, e.timing.TTL)
	r.mu.Lock()
	r.finalCall = r.now()
	r.mu.Unlock()
	final := e.mustClaim(s, historyName, "final", "final")
	for i, w := range ws {
		e.waitFor(e.settle(), fmt.Sprintf("watcher %d to show the last claim (fence %d)", i, final.Fence), func() bool {
			return w.saw(final.Fence)
		})
	}
	return final
}

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
// holder (a store that refuses claims for a while, such as Redis's restart
// quarantine), which changes nothing and is left out of the history.
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
		case errors.As(err, &taken) && taken.Holder.ID == "" && taken.Holder.Fence == 0:
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

// histWatcher watches the election on its own node for the whole run,
// watching again whenever a watch ends with an error.
type histWatcher struct {
	r *historyRun
	n *node

	mu   sync.Mutex
	seen []watchSeen
}

func (w *histWatcher) run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		ch, err := w.n.b.Watch(ctx, historyName)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if failures++; failures > 10 {
				w.r.e.t.Errorf("watcher %s: Watch failed %d times, last: %v", w.n.id, failures, err)
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for ev := range ch {
			if ev.Err != nil {
				break // the channel closes next; watch again
			}
			s := watchSeen{at: w.r.now()}
			if ev.Leader != nil {
				s.holder, s.fence = ev.Leader.ID, ev.Leader.Fence
			}
			w.mu.Lock()
			w.seen = append(w.seen, s)
			w.mu.Unlock()
		}
	}
}

func (w *histWatcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

// saw reports whether the watcher was shown the holder with fence.
func (w *histWatcher) saw(fence uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.seen {
		if s.holder != "" && s.fence == fence {
			return true
		}
	}
	return false
}

// describeHistory lists history in call order, one operation a line.
func describeHistory(history []porcupine.Operation) string {
	ops := slices.Clone(history)
	sort.Slice(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	var b strings.Builder
	for _, op := range ops {
		in := op.Input.(histIn)
		fmt.Fprintf(&b, "  client %d [%9.3fms %9.3fms] opened %9.3fms  %s\n", op.ClientId,
			float64(op.Call)/1e6, float64(op.Return)/1e6, float64(in.opened)/1e6, describeOp(op.Input, op.Output))
	}
	return b.String()
}
