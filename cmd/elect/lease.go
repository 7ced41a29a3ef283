package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/electionkit/election"
)

func newLeaseCLI() *cli {
	c := newCLI("lease", "[flags] KEY -- COMMAND [ARGS...]",
		`Take the one-shot lease KEY for --ttl (election.TryLease) and run COMMAND only if it was
free; exit 75 if another holds it. The lease is renewed while COMMAND runs (COMMAND is
killed, as with elect run, if it is lost), and is not released when COMMAND exits unless
--release is given: so "at most once per TTL across the cluster" is one crontab line on
every host.`,
		`  # every host's crontab: the report runs at most once an hour, on one host
  0 * * * *  elect lease --url etcd://10.0.0.1:2379/cron --ttl 1h hourly-report -- /usr/local/bin/report
  # once per night: a key per date
  30 2 * * *  elect lease --ttl 20h "backup-$(date +\%F)" -- /usr/local/bin/backup
  elect lease --release --ttl 10m reindex-42 -- ./reindex 42
`, 1, true)
	f := &commonFlags{meta: metaFlag{}}
	c.flags = f
	c.fs.StringVar(&f.id, "id", "", "the holder's `ID`, shown to readers (default: host, pid and a random suffix)")
	c.fs.Var(f.meta, "meta", "`key=value` metadata shown with the holder; repeatable (env: comma-separated)")
	c.fs.DurationVar(&f.ttl, "ttl", 0, "the lease's `TTL` (required)")
	c.fs.DurationVar(&f.grace, "grace", 0, "time between SIGTERM and SIGKILL (default min(TTL/4, 10s)); checked against the TTL")
	c.fs.BoolVar(&f.release, "release", false, "release the lease when COMMAND exits (default: keep it until its TTL runs out)")
	return c
}

// leasePlan is the renewal schedule of a lease held while a command runs:
// every TTL/3, each attempt bounded by min(TTL/6, 10s), drift margin TTL/10
// (TryLease's default).
func leasePlan(ttl time.Duration) gracePlan {
	return gracePlan{ttl: ttl, drift: ttl / 10, interval: ttl / 3, timeout: min(ttl/6, 10*time.Second)}
}

func leaseMain(c *cli) int {
	f := c.flags
	log := &logger{w: os.Stderr}
	key := c.pos[0]
	if f.ttl <= 0 {
		fmt.Fprintln(os.Stderr, "elect lease: --ttl is required and must be positive (how long the lease is held, such as 1h)")
		return exitUsage
	}
	plan := leasePlan(f.ttl)
	grace := f.grace
	if grace == 0 {
		grace = plan.defaultGrace()
	}
	if err := plan.check(grace); err != nil {
		fmt.Fprintf(os.Stderr, "elect lease: %v\n", err)
		return exitUsage
	}
	if code := lookCommand(c); code != 0 {
		return code
	}
	if err := becomeSubreaper(); err != nil {
		fmt.Fprintf(os.Stderr, "elect lease: %v\n", err)
		return exitFailed
	}
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, forwarded...)

	b, _, code := openStore(c)
	if code != 0 {
		return code
	}
	defer func() { _ = election.CloseBackend(b) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	lease, err := election.TryLeaseWith(ctx, b, key, f.ttl, election.LeaseOptions{ID: f.id, Metadata: f.meta})
	cancel()
	var taken *election.TakenError
	switch {
	case errors.As(err, &taken):
		fmt.Fprintf(os.Stderr, "elect lease: %q is held by %q (fence %d)\n", key, taken.Holder.ID, taken.Holder.Fence)
		return exitTaken
	case errors.Is(err, election.ErrTaken):
		fmt.Fprintf(os.Stderr, "elect lease: %v\n", err)
		return exitTaken
	case errors.Is(err, election.ErrInvalidArgument):
		fmt.Fprintf(os.Stderr, "elect lease: %v\n", err)
		return exitUsage
	case err != nil:
		fmt.Fprintf(os.Stderr, "elect lease: %v\n", err)
		return exitUnavailable
	}
	id := lease.ID() // --id, or the library's default: host, pid and a random suffix
	log.infof("holding lease %q as %q (fence %d) until %s", key, id, lease.Fence(), lease.Deadline().UTC().Format(time.RFC3339Nano))

	dir, err := os.MkdirTemp("", "elect-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "elect lease: %v\n", err)
		return exitFailed
	}
	defer os.RemoveAll(dir)
	deadlineFile := filepath.Join(dir, "deadline")
	h := &leaseHolding{lease: lease, lost: make(chan struct{}), renewed: make(chan struct{}, 1), stop: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.renewLoop(plan, log)
	}()
	out, err := runChild(h, childSpec{
		argv: c.command,
		env: []string{envName + "=" + key, envID + "=" + id,
			envFence + "=" + strconv.FormatUint(lease.Fence(), 10), envDeadlineFile + "=" + deadlineFile},
		grace: grace, killMargin: plan.killMargin(), deadlineFile: deadlineFile, log: log,
	}, sigc)
	close(h.stop)
	wg.Wait()
	if err != nil {
		fmt.Fprintf(os.Stderr, "elect lease: %v\n", err)
		return exitFailed
	}
	if out.lost {
		log.infof("the lease was lost; the command was stopped (status %d)", out.status)
		return exitLost
	}
	if f.release {
		ctx, cancel := context.WithTimeout(context.Background(), plan.timeout)
		defer cancel()
		if err := lease.Release(ctx); err != nil {
			log.infof("release: %v", err)
		}
	}
	return out.status
}

// leaseHolding binds a command to a lease, renewed by renewLoop.
type leaseHolding struct {
	lease   *election.Lease
	lost    chan struct{}
	renewed chan struct{}
	stop    chan struct{}
}

func (h *leaseHolding) Deadline() time.Time      { return h.lease.Deadline() }
func (h *leaseHolding) Lost() <-chan struct{}    { return h.lost }
func (h *leaseHolding) Renewed() <-chan struct{} { return h.renewed }

// renewLoop renews the lease every plan.interval, retrying failures every
// plan.timeout/2, until stop is closed or the lease is found lost.
func (h *leaseHolding) renewLoop(plan gracePlan, log *logger) {
	next := plan.interval
	for {
		timer := time.NewTimer(next)
		select {
		case <-h.stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), plan.timeout)
		err := h.lease.Renew(ctx)
		cancel()
		switch {
		case err == nil:
			next = plan.interval
			select {
			case h.renewed <- struct{}{}:
			default:
			}
		case errors.Is(err, election.ErrLost), errors.Is(err, election.ErrNotOwner), errors.Is(err, election.ErrStopped):
			log.infof("%v", err)
			close(h.lost)
			return
		default:
			log.infof("renew: %v", err)
			next = max(plan.timeout/2, 10*time.Millisecond)
		}
	}
}
