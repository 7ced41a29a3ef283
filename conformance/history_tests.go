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
