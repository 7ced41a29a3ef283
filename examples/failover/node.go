package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/electionkit/election"
)

// timeline prints events with the time since the demo started.
type timeline struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (t *timeline) say(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "%8.3fs  %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...))
}

// ledger stands for a system the leader writes to: it rejects a write whose
// fencing token is older than the newest it has accepted.
type ledger struct {
	tl       *timeline
	mu       sync.Mutex
	newest   uint64
	accepted int
	rejected int
}

func newLedger(tl *timeline) *ledger { return &ledger{tl: tl} }

func (l *ledger) write(id string, fence uint64, seq int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if fence < l.newest {
		l.rejected++
		l.tl.say("  ledger REJECTS %s write #%d: fence %d is older than %d", id, seq, fence, l.newest)
		return
	}
	l.newest = fence
	l.accepted++
}

func (l *ledger) counts() (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted, l.rejected
}

// node is one participant: its own backend connection, elector and
// candidate, as a separate process would have.
type node struct {
	id      string
	backend election.Backend
	el      *election.Elector
	cand    *election.Candidate

	mu      sync.Mutex
	lastEnd time.Time
}

func startNode(ctx context.Context, url string, ttl time.Duration, id string, tl *timeline, led *ledger) (*node, error) {
	b, cfg, err := election.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	if cfg.TTL == 0 {
		cfg.TTL = ttl
	}
	n := &node{id: id, backend: b}
	cfg.OnEvent = func(ev election.Event) {
		switch ev.Kind {
		case election.EventClaimed:
			if ev.Queued {
				tl.say("%s elected, fence %d (it waited in line: the end of the last term elected it)", id, ev.Fence)
			} else {
				tl.say("%s elected, fence %d (claim took %v)", id, ev.Fence, ev.Latency.Round(10*time.Microsecond))
			}
		case election.EventLost:
			tl.say("%s lost leadership: %s", id, ev.Reason)
		}
	}
	el, err := election.New(b, cfg)
	if err != nil {
		_ = election.CloseBackend(b)
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	n.el = el
	c, err := el.NewCandidate(election.CandidateConfig{
		Name: "ledger-writer", ID: id,
		Handlers: []election.Handler{n.work(tl, led)},
	})
	if err != nil {
		n.close()
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	n.cand = c
	if err := c.Start(ctx); err != nil {
		n.close()
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	return n, nil
}

// work is the leader-only job: write to the ledger with the term's fence
// until leadership ends.
func (n *node) work(tl *timeline, led *ledger) election.Handler {
	return func(ctx context.Context, t election.Term) {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for seq := 1; ; seq++ {
			select {
			case <-ctx.Done():
				n.mu.Lock()
				n.lastEnd = time.Now()
				n.mu.Unlock()
				tl.say("%s leader work stopped after %d writes (%v)", n.id, seq-1, context.Cause(ctx))
				return
			case <-tick.C:
				led.write(n.id, t.Fence, seq)
			}
		}
	}
}

// leadEnded returns when this node's last leader work stopped.
func (n *node) leadEnded() (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastEnd, !n.lastEnd.IsZero()
}

// crash kills the node's store connection: renewals fail from now on and
// nothing is released, as if the process had died. The node's own deadline
// still stops its leader work, which a dead process would not need.
func (n *node) crash() { _ = election.CloseBackend(n.backend) }

func (n *node) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n.el != nil {
		_ = n.el.Close(ctx)
	}
	_ = election.CloseBackend(n.backend)
}
