// Package sim runs seeded random schedules of electors, candidates, handlers
// and faults against the memory backend, inside a testing/synctest bubble
// (fake time that moves only when every goroutine is blocked), and checks
// the recorded history with internal/history.
//
// A seed fixes the whole schedule: the store's expiry mode, the TTL, how
// many electors and elections, each elector's clock rate, every Start,
// Stop, Resign and Close with its context deadline (some called from
// handlers and event callbacks), how each handler behaves (returns at once,
// finishes early, lingers up to 3×TTL ignoring its context), and the faults
// (partitions, store pauses, latency, store restarts, process crashes).
// Every random choice in the core and the store comes from the seed too, so
// only the order of goroutines can vary between two runs of one seed.
package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing/synctest"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
	"github.com/electionkit/election/internal/history"
)

// Options vary what a seed's schedule may do.
type Options struct {
	// Trace keeps the schedule and the whole history in the Result even
	// when the seed passes.
	Trace bool
	// SkewBeyondDrift makes one elector's clock run slower than the store's
	// by twice its drift margin, which the safety rule does not cover: the
	// checker must then find an overlap. It proves the checker can fail.
	SkewBeyondDrift bool
}

// Result is what one seed did and what the checker found.
type Result struct {
	Seed       uint64
	Plan       string // the schedule, for a failure report
	Violations []string
	Terms      int    // handler runs recorded
	Overruns   int    // overrun reports
	Trace      string // the whole history, in time order
}

// Failed reports whether the seed broke a promise.
func (r Result) Failed() bool { return len(r.Violations) > 0 }

// plan is a seed's schedule.
type plan struct {
	seed      uint64
	expiry    memory.Expiry
	ttl       time.Duration
	interval  time.Duration // 0: the default
	elections []string
	electors  []electorPlan
	actions   []action
	horizon   time.Duration
}

type electorPlan struct {
	name       string
	rate       float64 // clock rate against the store's
	stopOnLoss bool    // its OnEvent stops the candidate on EventLost
	cands      []candPlan
}

type candPlan struct {
	election string
	id       string
	startAt  time.Duration
}

type actionKind int

const (
	actStop actionKind = iota
	actResign
	actClose
	actCut
	actLatency
	actPause
	actRestart
	actCrash
)

var actionNames = [...]string{"stop", "resign", "close", "cut", "latency", "pause", "restart", "crash"}

type action struct {
	at       time.Duration
	kind     actionKind
	elector  int
	cand     int
	timeout  time.Duration // the call's context: <0 already ended, 0 none
	duration time.Duration // faults
	amount   time.Duration // latency
}

func (a action) String() string {
	s := fmt.Sprintf("%v %s e%d", a.at, actionNames[a.kind], a.elector)
	switch a.kind {
	case actStop, actResign:
		s += fmt.Sprintf(" c%d ctx=%v", a.cand, a.timeout)
	case actClose:
		s += fmt.Sprintf(" ctx=%v", a.timeout)
	case actCut, actPause, actRestart:
		s += fmt.Sprintf(" for %v", a.duration)
	case actLatency:
		s += fmt.Sprintf(" %v for %v", a.amount, a.duration)
	}
	return s
}

// newPlan draws seed's schedule.
func newPlan(seed uint64, opts Options) plan {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	p := plan{seed: seed}
	p.expiry = []memory.Expiry{memory.EtcdExpiry, memory.RedisExpiry, memory.ConsulExpiry}[rng.IntN(3)]
	p.ttl = time.Duration(1+rng.IntN(4)) * time.Second
	if rng.IntN(3) == 0 {
		p.interval = p.ttl / 4
	}
	for i := range 1 + rng.IntN(3) {
		p.elections = append(p.elections, fmt.Sprintf("job-%d", i))
	}
	drift := float64(p.ttl/10) / float64(p.ttl) // the default DriftMargin, as a fraction of the TTL
	nElectors := 2 + rng.IntN(4)
	for i := range nElectors {
		ep := electorPlan{name: fmt.Sprintf("e%d", i), rate: 1, stopOnLoss: rng.IntN(6) == 0}
		if rng.IntN(3) == 0 {
			// Within the drift margin: up to half of it either way.
			ep.rate = 1 + drift*(rng.Float64()-0.5)
		}
		for _, name := range p.elections {
			if rng.IntN(10) < 7 || len(ep.cands) == 0 && name == p.elections[len(p.elections)-1] {
				at := time.Duration(0)
				if rng.IntN(4) == 0 {
					at = time.Duration(rng.Int64N(int64(4 * p.ttl)))
				}
				ep.cands = append(ep.cands, candPlan{election: name, id: fmt.Sprintf("%s-%s", ep.name, name), startAt: at})
			}
		}
		p.electors = append(p.electors, ep)
	}
	if opts.SkewBeyondDrift {
		p.electors[0].rate = 1 - 2*drift
	}
	p.horizon = 10 * p.ttl
	timeout := func() time.Duration {
		switch rng.IntN(4) {
		case 0:
			return -1 // already ended
		case 1:
			return p.ttl / 5
		case 2:
			return 2 * p.ttl
		default:
			return 0 // none
		}
	}
	for range 4 + rng.IntN(10) {
		a := action{at: time.Duration(rng.Int64N(int64(p.horizon - 3*p.ttl))), elector: rng.IntN(nElectors)}
		switch r := rng.IntN(100); {
		case r < 18:
			a.kind = actStop
		case r < 36:
			a.kind = actResign
		case r < 44:
			a.kind = actClose
		case r < 64:
			a.kind = actCut
		case r < 74:
			a.kind = actLatency
		case r < 82:
			a.kind = actPause
		case r < 90:
			a.kind = actRestart
		default:
			a.kind = actCrash
		}
		ep := p.electors[a.elector]
		a.cand = rng.IntN(len(ep.cands))
		a.timeout = timeout()
		a.duration = time.Duration(rng.Int64N(int64(3 * p.ttl)))
		a.amount = time.Duration(rng.Int64N(int64(p.ttl / 3)))
		p.actions = append(p.actions, a)
	}
	sort.SliceStable(p.actions, func(i, j int) bool { return p.actions[i].at < p.actions[j].at })
	return p
}

func (p plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %v expiry, TTL %v", p.seed, p.expiry, p.ttl)
	if p.interval > 0 {
		fmt.Fprintf(&b, ", RenewInterval %v", p.interval)
	}
	for _, e := range p.electors {
		fmt.Fprintf(&b, "\n  %s rate %.4f stopOnLoss %v:", e.name, e.rate, e.stopOnLoss)
		for _, c := range e.cands {
			fmt.Fprintf(&b, " %s@%v", c.id, c.startAt)
		}
	}
	for _, a := range p.actions {
		fmt.Fprintf(&b, "\n  %v", a)
	}
	return b.String()
}

// skewClock is a process's clock running at rate against the bubble's.
type skewClock struct {
	base time.Time
	rate float64
}

func (c skewClock) Now() time.Time {
	return c.base.Add(time.Duration(float64(time.Since(c.base)) * c.rate))
}

func (c skewClock) AfterFunc(d time.Duration, f func()) election.Timer {
	// Rounded up, so that a timer never fires before its time on this clock.
	return time.AfterFunc(time.Duration(math.Ceil(float64(d)/c.rate)), f)
}

func (c skewClock) toReal(t time.Time) time.Time {
	return c.base.Add(time.Duration(math.Ceil(float64(t.Sub(c.base)) / c.rate)))
}

// world is one seed's run.
type world struct {
	trace bool // keep the trace even if the seed passes
	p     plan
	rec   *history.Recorder
	store *memory.Store
	procs []*proc
	calls sync.WaitGroup

	mu         sync.Mutex
	violations []string
}

type proc struct {
	w      *world
	plan   electorPlan
	clock  skewClock
	client *memory.Client
	el     *election.Elector
	cands  []*cand

	mu      sync.Mutex
	closed  bool
	crashed bool
	healLat func()
}

type cand struct {
	proc    *proc
	plan    candPlan
	c       *election.Candidate
	rng     *rand.Rand // the handler's choices; used by one term at a time
	mu      sync.Mutex
	started bool
	stopped bool // Stop asked
	// stopRet is when a Stop (or its elector's Close) first returned with
	// the candidate stopped; keptRet, when one first returned before that,
	// the candidate stepping down with handlers running (ErrHandlersRunning).
	stopRet, keptRet time.Time
	claims           []time.Time // the last churnLimit claims' times
	churning         bool
}

// churned records a claim and reports, once, whether k has sent more than
// churnLimit of them within one ttl.
func (k *cand) churned(ttl time.Duration) bool {
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.claims = append(k.claims, now)
	if len(k.claims) > churnLimit {
		k.claims = k.claims[1:]
	}
	if k.churning || len(k.claims) < churnLimit || now.Sub(k.claims[0]) > ttl {
		return false
	}
	k.churning = true
	return true
}

// stopReturned records that a Stop or Close of k returned.
func (k *cand) stopReturned() {
	stopped := false
	select {
	case <-k.c.Done():
		stopped = true
	default:
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case stopped && k.stopRet.IsZero():
		k.stopRet = time.Now()
	case !stopped && k.keptRet.IsZero():
		k.keptRet = time.Now()
	}
}

// endsNow reports whether ctx is done within the current instant of the
// bubble's fake time: the clock moves only once every goroutine is durably
// blocked, so a cancellation already under way has happened by then.
func endsNow(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	case <-time.After(time.Nanosecond):
		return ctx.Err() != nil
	}
}

func (w *world) violate(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violations = append(w.violations, fmt.Sprintf(format, args...))
}

// Run runs seed's schedule. It must be called inside a synctest bubble,
// alone in it.
func Run(seed uint64, opts Options) Result {
	p := newPlan(seed, opts)
	start := time.Now()
	w := &world{p: p, rec: history.New(time.Now), trace: opts.Trace}
	w.store = memory.NewStore(memory.WithExpiry(p.expiry), memory.WithRand(rand.NewPCG(seed, 0x570e)))
	cfgFor := func(i int, pr *proc) election.Config {
		return election.Config{
			TTL:           p.ttl,
			RenewInterval: p.interval,
			Clock:         pr.clock,
			Rand:          rand.NewPCG(seed, uint64(100+i)),
			OnEvent:       pr.onEvent,
		}
	}
	for i, ep := range p.electors {
		pr := &proc{w: w, plan: ep, clock: skewClock{base: start, rate: ep.rate}, client: w.store.NewClient()}
		w.rec.AddProcess(history.Process{Name: ep.name, ToReal: pr.clock.toReal})
		el, err := election.New(pr.client, cfgFor(i, pr))
		if err != nil {
			w.violate("election.New: %v", err)
			return w.result()
		}
		pr.el = el
		for j, cp := range ep.cands {
			c, err := el.NewCandidate(election.CandidateConfig{Name: cp.election, ID: cp.id})
			if err != nil {
				w.violate("NewCandidate: %v", err)
				return w.result()
			}
			k := &cand{proc: pr, plan: cp, c: c, rng: rand.New(rand.NewPCG(seed, uint64(1000+10*i+j)))}
			c.AddHandlers(k.handler)
			pr.cands = append(pr.cands, k)
		}
		w.procs = append(w.procs, pr)
	}

	// The schedule: starts and actions at their times, each call in a
	// goroutine of its own (calls block).
	type timed struct {
		at time.Duration
		do func()
	}
	var todo []timed
	for _, pr := range w.procs {
		for _, k := range pr.cands {
			todo = append(todo, timed{k.plan.startAt, k.start})
		}
	}
	for _, a := range p.actions {
		todo = append(todo, timed{a.at, func() { w.act(a) }})
	}
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].at < todo[j].at })
	for _, t := range todo {
		time.Sleep(t.at - time.Since(start))
		w.calls.Add(1)
		go func() {
			defer w.calls.Done()
			t.do()
		}()
	}

	// Heal what is still broken (faults end by themselves before the
	// horizon; this is their deadline), then let the world run quiet.
	time.Sleep(p.horizon - time.Since(start))
	w.healAll()
	healed := time.Now()
	lag := time.Duration(0)
	if p.expiry == memory.ConsulExpiry {
		lag = p.ttl // Consul-like sessions live up to 2×TTL
	}
	leadWithin := 2*p.ttl + lag
	// Record long enough to judge liveness: lingering handlers (they return
	// within 3×TTL of their context's end) push the bound later.
	for range 20 {
		wait := w.rec.LivenessDue(healed, leadWithin)
		if wait < 0 {
			break
		}
		time.Sleep(wait + p.ttl/10)
	}
	end := time.Now()

	// Every call must have returned by now: the longest wait is a handler
	// lingering 3×TTL.
	if !waitFor(&w.calls, p.ttl) {
		w.violate("deadlock: a Stop, Resign or Close call has not returned %v after the schedule ended", time.Since(healed))
	}
	live := map[string][]string{}
	for _, pr := range w.procs {
		pr.mu.Lock()
		dead := pr.closed || pr.crashed
		pr.mu.Unlock()
		for _, k := range pr.cands {
			k.mu.Lock()
			if !dead && k.started && !k.stopped {
				live[k.plan.election] = append(live[k.plan.election], k.plan.id)
			}
			k.mu.Unlock()
		}
	}
	w.shutdown()
	w.rec.SetHolds(holds(w.store))
	cfg := w.procs[0].el.Config()
	minRate := 1.0
	for _, pr := range w.procs {
		minRate = min(minRate, pr.clock.rate)
	}
	slack := time.Duration(float64(time.Duration(float64(cfg.RenewInterval)*(1+cfg.RenewJitter))+cfg.RenewTimeout+2*cfg.OpTimeout)/minRate) + lag
	for _, v := range w.rec.Check(history.Bounds{
		ZombieSlack:   slack,
		ClosedSlack:   p.ttl + lag,
		OverrunWithin: cfg.DriftMargin,
		Healed:        healed,
		LeadWithin:    leadWithin,
		End:           end,
		Live:          live,
	}) {
		w.violate("%v", v)
	}
	return w.result()
}

func (w *world) result() Result {
	r := Result{Seed: w.p.seed, Violations: w.violations, Terms: len(w.rec.Runs())}
	if w.trace || r.Failed() {
		r.Plan, r.Trace = w.p.String(), w.rec.Dump()
	}
	for _, ev := range w.rec.Events() {
		if ev.Kind == election.EventHandlerOverrun {
			r.Overruns++
		}
	}
	return r
}

// waitFor waits for wg, at most d of (fake) time.
func waitFor(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func holds(s *memory.Store) []history.Hold {
	var out []history.Hold
	for _, h := range s.Holds() {
		out = append(out, history.Hold{Election: h.Election, Holder: h.HolderID, Fence: h.Fence, From: h.From, To: h.To,
			Released: h.End == memory.EndRelease || h.End == memory.EndSessionClose})
	}
	return out
}

// churnLimit is how many claims a candidate may send within one TTL of
// fake time. Claims are spaced by backoff and by the store's pushes; a
// candidate past this churns (say, every new term born past its deadline),
// and may do so within one instant of fake time, where the bubble would
// spin for ever: it is stopped and the seed fails.
const churnLimit = 200

// onEvent records the process's events and, for an elector so planned,
// stops a candidate from its event callback when it loses.
func (pr *proc) onEvent(ev election.Event) {
	pr.w.rec.OnEvent(pr.plan.name)(ev)
	if ev.State == election.StateClaiming { // any way into Claiming
		for _, k := range pr.cands {
			if k.plan.id == ev.Candidate && k.churned(pr.w.p.ttl) {
				pr.w.violate("churn: %s sent more than %d claims within one TTL (%v), at %v", k.plan.id, churnLimit, pr.w.p.ttl, time.Now())
				go k.stop(-1, "churn watchdog")
			}
		}
	}
	if pr.plan.stopOnLoss && ev.Kind == election.EventLost {
		for _, k := range pr.cands {
			if k.plan.id == ev.Candidate {
				k.stop(-1, "OnEvent")
			}
		}
	}
}

func (k *cand) start() {
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	k.started = true
	k.mu.Unlock()
	if err := k.c.Start(context.Background()); err != nil && !errors.Is(err, election.ErrStopped) {
		k.proc.w.violate("%s: Start: %v", k.plan.id, err)
	}
}

// callContext returns the context a call waits with: already ended
// (timeout < 0), none (0), or with a deadline.
func callContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	switch {
	case timeout < 0:
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	case timeout == 0:
		return context.WithCancel(context.Background())
	default:
		return context.WithTimeout(context.Background(), timeout)
	}
}

// bound is how long a call with timeout may take: its timeout, then one
// claim and one release attempt at most. Operation timeouts are contexts,
// on real time; the rest of the process's timing is on its own clock.
func (pr *proc) bound(timeout time.Duration) time.Duration {
	cfg := pr.el.Config()
	return time.Duration(float64(max(timeout, 0)+2*cfg.OpTimeout)*max(1, 1/pr.clock.rate)) + time.Millisecond
}

func (k *cand) stop(timeout time.Duration, from string) {
	k.mu.Lock()
	k.stopped = true
	k.mu.Unlock()
	ctx, cancel := callContext(timeout)
	defer cancel()
	began := time.Now()
	err := k.c.Stop(ctx)
	k.stopReturned()
	k.proc.checkCall(fmt.Sprintf("%s: Stop (from %s, ctx %v)", k.plan.id, from, timeout), timeout, 0, began, err, from == "handler")
}

func (k *cand) resign(timeout time.Duration, from string) {
	ctx, cancel := callContext(timeout)
	defer cancel()
	began := time.Now()
	err := k.c.Resign(ctx)
	if errors.Is(err, election.ErrNotLeader) || errors.Is(err, election.ErrStopped) {
		err = nil
	}
	k.proc.checkCall(fmt.Sprintf("%s: Resign (from %s, ctx %v)", k.plan.id, from, timeout), timeout, 0, began, err, from == "handler")
}

// checkCall checks what a Stop, Resign or Close returned and how long it
// took. A call with no deadline, from outside a handler, may wait for
// lingering handlers; any other returns within its bound.
func (pr *proc) checkCall(what string, timeout, extra time.Duration, began time.Time, err error, fromHandler bool) {
	took := time.Since(began)
	if bound := pr.bound(timeout) + extra; (timeout != 0 || fromHandler) && took > bound {
		pr.w.violate("%s took %v, more than its bound %v", what, took, bound)
	}
	if fromHandler && err != nil && !errors.Is(err, election.ErrHandlersRunning) {
		pr.w.violate("%s returned %v, want nil or ErrHandlersRunning", what, err)
	}
	if err != nil && !errors.Is(err, election.ErrHandlersRunning) && !errors.Is(err, election.ErrUnavailable) {
		pr.w.violate("%s returned %v", what, err)
	}
	if errors.Is(err, election.ErrHandlersRunning) && timeout == 0 && !fromHandler {
		pr.w.violate("%s without a deadline returned %v", what, err)
	}
}

func (w *world) act(a action) {
	pr := w.procs[a.elector]
	pr.mu.Lock()
	crashed := pr.crashed
	pr.mu.Unlock()
	k := pr.cands[a.cand]
	switch a.kind {
	case actStop:
		k.stop(a.timeout, "schedule")
	case actResign:
		k.mu.Lock()
		ok := k.started && !k.stopped
		k.mu.Unlock()
		if ok {
			k.resign(a.timeout, "schedule")
		}
	case actClose:
		pr.close(a.timeout)
	case actCut:
		if crashed {
			return
		}
		heal := w.rec.Fault(pr.plan.name, "cut")
		_ = pr.client.Cut(context.Background())
		time.Sleep(a.duration)
		_ = pr.client.Heal(context.Background())
		heal()
	case actLatency:
		if crashed {
			return
		}
		heal := w.rec.Fault(pr.plan.name, "latency")
		_ = pr.client.SetLatency(a.amount/2, a.amount/2)
		time.Sleep(a.duration)
		_ = pr.client.SetLatency(0, 0)
		heal()
	case actPause:
		heal := w.rec.Fault("", "pause")
		if w.store.Pause(context.Background()) != nil {
			heal()
			return // stopped or paused already
		}
		time.Sleep(a.duration)
		_ = w.store.Resume(context.Background())
		heal()
	case actRestart:
		heal := w.rec.Fault("", "restart")
		if w.store.Stop(context.Background()) != nil {
			heal()
			return
		}
		time.Sleep(a.duration)
		_ = w.store.Start(context.Background())
		heal()
	case actCrash:
		pr.mu.Lock()
		if pr.crashed || pr.closed {
			pr.mu.Unlock()
			return
		}
		pr.crashed = true
		pr.mu.Unlock()
		w.rec.Crash(pr.plan.name)
		_ = pr.client.Close()
	}
}

func (pr *proc) close(timeout time.Duration) {
	pr.w.rec.Closing(pr.plan.name)
	pr.mu.Lock()
	pr.closed = true
	crashed := pr.crashed
	pr.mu.Unlock()
	for _, k := range pr.cands {
		k.mu.Lock()
		k.stopped = true
		k.mu.Unlock()
	}
	ctx, cancel := callContext(timeout)
	defer cancel()
	began := time.Now()
	err := pr.el.Close(ctx)
	for _, k := range pr.cands {
		k.stopReturned()
	}
	if crashed {
		return // its store client is closed: releases fail
	}
	// Close also ends the session: one more store call.
	pr.checkCall(fmt.Sprintf("%s: Close (ctx %v)", pr.plan.name, timeout), timeout, pr.el.Config().OpTimeout, began, err, false)
}

// healAll ends every fault still active.
func (w *world) healAll() {
	_ = w.store.Resume(context.Background())
	_ = w.store.Start(context.Background())
	for _, pr := range w.procs {
		_ = pr.client.Heal(context.Background())
		_ = pr.client.SetLatency(0, 0)
	}
}

// shutdown closes every elector and client, waits for them, and checks
// that nothing of theirs is left running.
func (w *world) shutdown() {
	for _, pr := range w.procs {
		w.calls.Add(1)
		go func() {
			defer w.calls.Done()
			pr.close(0)
		}()
	}
	if !waitFor(&w.calls, 10*w.p.ttl) {
		w.violate("deadlock: Close without a deadline did not return within 10×TTL of the end")
		return
	}
	for _, pr := range w.procs {
		select {
		case <-pr.el.Done():
		case <-time.After(10 * w.p.ttl):
			w.violate("%s: Elector.Done not closed 10×TTL after Close returned", pr.plan.name)
		}
		_ = pr.client.Close()
	}
	// Goroutines that have returned but not yet exited are not left over.
	synctest.Wait()
	if left := bubbleGoroutines(); len(left) > 0 {
		w.violate("goroutines left after every Stop and Close returned:\n%s", strings.Join(left, "\n"))
	}
}

// handler is every candidate's handler: it writes to the fenced sink
// while it runs and behaves as the seed says: returns when its context
// ends, finishes early, lingers up to 3×TTL ignoring its context, or calls
// Stop or Resign from inside.
func (k *cand) handler(ctx context.Context, t election.Term) {
	w := k.proc.w
	run := w.rec.Begin(k.proc.plan.name, t)
	defer run.Return()
	k.mu.Lock()
	stopRet, keptRet := k.stopRet, k.keptRet
	behaviour := k.rng.IntN(100)
	linger := time.Duration(k.rng.Int64N(int64(3 * w.p.ttl)))
	early := time.Duration(k.rng.Int64N(int64(w.p.ttl)))
	k.mu.Unlock()
	switch {
	case !stopRet.IsZero():
		w.violate("%s: a handler of fence %d started at %v, after Stop or Close returned at %v", k.plan.id, t.Fence, time.Now(), stopRet)
	case !keptRet.IsZero() && !endsNow(ctx):
		// A Stop that returned ErrHandlersRunning saw the term stepping
		// down with this handler registered, and its goroutine may begin
		// only now; but it must find the term ended. A live context is a
		// term that started after Stop returned.
		w.violate("%s: a handler of fence %d started at %v with a live context, after Stop or Close returned ErrHandlersRunning at %v",
			k.plan.id, t.Fence, time.Now(), keptRet)
	}
	tick := time.NewTicker(w.p.ttl / 5)
	defer tick.Stop()
	write := func() { w.rec.Write(run) }
	write()
	var finish <-chan time.Time
	if behaviour >= 90 {
		finish = time.After(early)
	}
	if behaviour >= 85 && behaviour < 90 {
		// Resign from a goroutine the handler starts: it waits for the
		// handler like any outside caller.
		go k.resign(0, "a goroutine of the handler")
	}
	for {
		select {
		case <-tick.C:
			write()
			continue
		case <-finish:
			return
		case <-ctx.Done():
		}
		break
	}
	switch {
	case behaviour < 60:
		return
	case behaviour < 75:
		// A batch finishing its last steps, ignoring the context.
		end := time.After(linger)
		for {
			select {
			case <-tick.C:
				write()
			case <-end:
				return
			}
		}
	case behaviour < 80:
		k.stop(0, "handler")
	default:
		k.resign(-1, "handler")
	}
}

// bubbleGoroutines returns the stacks of the goroutines of the caller's
// synctest bubble other than the caller.
func bubbleGoroutines() []string {
	buf := make([]byte, 64<<10)
	n := runtime.Stack(buf, true)
	for n == len(buf) {
		buf = make([]byte, 2*len(buf))
		n = runtime.Stack(buf, true)
	}
	stacks := strings.Split(string(buf[:n]), "\n\n")
	own := stacks[0]
	bubble := ""
	if i := strings.Index(own, "synctest bubble "); i >= 0 {
		bubble = own[i : i+strings.IndexAny(own[i:], ",]")]
	}
	if bubble == "" {
		return nil
	}
	var out []string
	for _, s := range stacks[1:] {
		header, _, _ := strings.Cut(s, "\n")
		ours := strings.Contains(header, bubble+",") || strings.Contains(header, bubble+"]")
		// The bubble's own machinery (synctest.Run, the test's goroutine)
		// is not the library's.
		machinery := strings.Contains(s, "internal/synctest.Run(") || strings.Contains(s, "testing/synctest.") ||
			strings.Contains(s, "internal/sim.Run(")
		if ours && !machinery {
			out = append(out, s)
		}
	}
	return out
}
