// Command failover shows leader election surviving a crash and handing over
// gracefully, as a timeline.
//
// With no flags it starts an embedded etcd server on a free loopback port,
// so it needs nothing but Go:
//
//	go run ./examples/failover
//
// Point it at a real store with -url (any registered backend):
//
//	go run ./examples/failover -url 'redis://127.0.0.1:6379/0?ttl=2s'
//
// Three nodes campaign for one election. The leader writes to a ledger that
// accepts a write only if its fencing token is not older than the newest it
// has seen. The demo kills the leader's store connection without releasing
// anything (a crash), shows that the old leader stops acting on its own
// deadline before the store elects the next one, and measures the takeover;
// then it stops the new leader gracefully and measures the pushed handoff.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/examples/demostore"
)

func main() {
	url := flag.String("url", "", "backend URL (etcd://, redis://, rediss://, consul://, memory://); empty: embedded etcd")
	ttl := flag.Duration("ttl", 2*time.Second, "lease TTL, unless the URL sets ttl=")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, *url, *ttl); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

// run plays the scenario against url (or an embedded etcd when empty) and
// writes the timeline to w.
func run(ctx context.Context, w io.Writer, url string, ttl time.Duration) error {
	tl := &timeline{w: w, start: time.Now()}
	embedded := url == ""
	url, closeStore, err := demostore.URL(ctx, url, "failover-demo")
	if err != nil {
		return err
	}
	defer closeStore()
	if embedded {
		tl.say("embedded etcd serving at %s", url)
	}
	cfgURL, _, err := election.ParseURL(url)
	if err != nil {
		return err
	}
	if cfgURL.TTL == 0 {
		cfgURL.TTL = ttl
	}
	tl.say("TTL %v: a leader renews every TTL/3 and steps down at last renewal + TTL − %v", cfgURL.TTL, cfgURL.TTL/10)

	led := newLedger(tl)
	var nodes []*node
	defer func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() { defer wg.Done(); n.close() }()
		}
		wg.Wait()
	}()
	for _, id := range []string{"node-a", "node-b", "node-c"} {
		n, err := startNode(ctx, url, cfgURL.TTL, id, tl, led)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
	}

	first := waitLeader(ctx, nodes, nil)
	if first == nil {
		return ctx.Err()
	}
	sleep(ctx, cfgURL.TTL)

	tl.say("CRASH %s: its store connection dies; nothing is released", first.id)
	crashAt := time.Now()
	first.crash()
	second := waitLeader(ctx, nodes, first)
	if second == nil {
		return ctx.Err()
	}
	term, _ := second.cand.Term()
	tl.say("takeover by %s %v after the crash (TTL %v; the store expires the lease, then pushes the change)",
		second.id, term.Since.Sub(crashAt).Round(time.Millisecond), cfgURL.TTL)
	if end, ok := first.leadEnded(); ok {
		tl.say("%s stopped acting %v before %s was elected", first.id, term.Since.Sub(end).Round(time.Millisecond), second.id)
	}
	sleep(ctx, cfgURL.TTL/2)

	tl.say("GRACEFUL: %s stops (leader work cancelled, then the lease is released)", second.id)
	stopAt := time.Now()
	stopCtx, cancel := context.WithTimeout(ctx, cfgURL.TTL)
	err = second.cand.Stop(stopCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("stop %s: %w", second.id, err)
	}
	third := waitLeader(ctx, nodes, second)
	if third == nil {
		return ctx.Err()
	}
	term, _ = third.cand.Term()
	tl.say("handoff to %s %v after Stop was called (pushed by the store's watch, not found by polling)",
		third.id, term.Since.Sub(stopAt).Round(10*time.Microsecond))
	sleep(ctx, cfgURL.TTL/2)
	accepted, rejected := led.counts()
	tl.say("ledger: %d writes accepted, %d rejected as stale (fencing tokens only grew)", accepted, rejected)
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// waitLeader waits for a leader other than not.
func waitLeader(ctx context.Context, nodes []*node, not *node) *node {
	for ctx.Err() == nil {
		for _, n := range nodes {
			if n != not && n.cand.IsLeader() {
				return n
			}
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}
