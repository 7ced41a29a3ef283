// Command quickstart is the smallest complete use of the library: one
// candidate that does leader-only work while it leads and hands over on
// Ctrl-C. Run several copies against one store to watch them take turns.
//
//	go run ./examples/quickstart                       # embedded etcd, one node
//	go run ./examples/quickstart -url etcd://127.0.0.1:2379/app -id a
//	go run ./examples/quickstart -url etcd://127.0.0.1:2379/app -id b
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/examples/demostore"
)

func main() {
	url := flag.String("url", "", "backend URL; empty: an embedded etcd")
	id := flag.String("id", "", "candidate ID (default: host-pid-random)")
	name := flag.String("election", "quickstart", "election name")
	runFor := flag.Duration("for", 0, "exit after this long (0: until Ctrl-C)")
	flag.Parse()
	ctx, cancel := demostore.Context(*runFor) // Ctrl-C or -for ends the run
	defer cancel()
	if err := run(ctx, os.Stdout, *url, *name, *id); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer, url, name, id string) error {
	url, closeStore, err := demostore.URL(ctx, url, "quickstart")
	if err != nil {
		return err
	}
	defer closeStore()

	backend, cfg, err := election.Open(ctx, url)
	if err != nil {
		return err
	}
	defer election.CloseBackend(backend)
	el, err := election.New(backend, cfg)
	if err != nil {
		return err
	}
	c, err := el.NewCandidate(election.CandidateConfig{Name: name, ID: id})
	if err != nil {
		return err
	}
	c.AddHandlers(func(ctx context.Context, t election.Term) {
		fmt.Fprintf(w, "%s leads %q with fence %d\n", t.ID, t.Election, t.Fence)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				fmt.Fprintf(w, "%s stops leading: %v\n", t.ID, context.Cause(ctx))
				return
			case <-tick.C:
				fmt.Fprintf(w, "%s working (fence %d)\n", t.ID, t.Fence)
			}
		}
	})
	if err := c.Start(ctx); err != nil {
		return err
	}
	if !c.IsLeader() {
		if l, ok := c.Leader(); ok {
			fmt.Fprintf(w, "%s follows %s\n", c.ID(), l.ID)
		}
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return el.Close(stopCtx) // releases: another copy takes over at once
}
