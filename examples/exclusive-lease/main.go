// Command exclusive-lease guards a bulk job with a one-shot lease, the way
// GitLab guards its background jobs with ExclusiveLease: whoever takes the
// lease runs the job; the others skip it. The lease has an owner token (a
// release never frees someone else's lease) and a fencing token (the
// job's writes carry it), and it is renewed by hand while the job runs.
//
//	go run ./examples/exclusive-lease                  # embedded etcd
//	go run ./examples/exclusive-lease -url redis://127.0.0.1:6379/0
package main

import (
	"context"
	"errors"
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
	url := flag.String("url", "", "backend URL; empty: an embedded etcd")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, *url); err != nil {
		fmt.Fprintln(os.Stderr, "exclusive-lease:", err)
		os.Exit(1)
	}
}

const key = "reindex-project-42"

func run(ctx context.Context, w io.Writer, url string) error {
	url, closeStore, err := demostore.URL(ctx, url, "exclusive-lease")
	if err != nil {
		return err
	}
	defer closeStore()
	backend, _, err := election.Open(ctx, url)
	if err != nil {
		return err
	}
	defer election.CloseBackend(backend)

	// Three workers are told to reindex at once; one runs it.
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Fprintf(w, format+"\n", args...)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, worker := range []string{"worker-1", "worker-2", "worker-3"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- reindex(ctx, backend, worker, say)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	// Done and released: the next run can take the lease at once.
	lease, err := election.TryLease(ctx, backend, key, 5*time.Second)
	if err != nil {
		return fmt.Errorf("lease after release: %w", err)
	}
	say("after the job: the lease is free again (new fence %d)", lease.Fence())
	return lease.Release(ctx)
}

// reindex runs the job if this worker gets the lease, and skips it if not.
func reindex(ctx context.Context, b election.Backend, worker string, say func(string, ...any)) error {
	lease, err := election.TryLeaseWith(ctx, b, key, 3*time.Second, election.LeaseOptions{ID: worker})
	var taken *election.TakenError
	switch {
	case errors.As(err, &taken):
		say("%s: skipped, %q is leased by %s", worker, key, taken.Holder.ID)
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", worker, err)
	}
	defer func() {
		if err := lease.Release(ctx); err != nil {
			say("%s: release: %v", worker, err)
		}
	}()
	say("%s: took the lease, fence %d", worker, lease.Fence())
	for batch := 1; batch <= 4; batch++ {
		if !lease.Valid() {
			return fmt.Errorf("%s: lease expired mid-job; stopping before batch %d", worker, batch)
		}
		time.Sleep(time.Second) // one batch of work, written with lease.Fence()
		say("%s: batch %d written with fence %d", worker, batch, lease.Fence())
		if err := lease.Renew(ctx); err != nil {
			return fmt.Errorf("%s: renew: %w", worker, err)
		}
	}
	say("%s: job done, releasing", worker)
	return nil
}
