package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/electionkit/election"
	_ "github.com/electionkit/election/backends/consul"   // consul://
	_ "github.com/electionkit/election/backends/etcd"     // etcd://
	_ "github.com/electionkit/election/backends/postgres" // postgres://, postgresql://
	_ "github.com/electionkit/election/backends/redis"    // redis://, rediss://
	"github.com/electionkit/election/slogevents"
)

// Environment variables elect sets for the command.
const (
	envName         = "ELECTION_NAME"
	envID           = "ELECTION_ID"
	envFence        = "ELECTION_FENCE"
	envDeadlineFile = "ELECTION_DEADLINE_FILE"
)

// Restart policies of elect run.
const (
	restartNever     = "never"
	restartOnFailure = "on-failure"
	restartAlways    = "always"
)

// Flags of the subcommands, each registered by the subcommands that use it.
type commonFlags struct {
	id         string
	meta       metaFlag
	ttl        time.Duration
	grace      time.Duration
	restart    string
	backoff    time.Duration
	backoffMax time.Duration
	noWait     bool
	release    bool
	output     string
	timeout    time.Duration
}

func newRunCLI() *cli {
	c := newCLI("run", "[flags] NAME -- COMMAND [ARGS...]",
		`Campaign in election NAME; while leading, run COMMAND in its own process group with
ELECTION_NAME, ELECTION_ID, ELECTION_FENCE and ELECTION_DEADLINE_FILE (a file holding the
term's local deadline, RFC 3339, rewritten after every renewal). If renewals stop or the
term is lost, COMMAND's processes get SIGTERM, then SIGKILL before the deadline. When
COMMAND exits, elect resigns, then exits or campaigns again (--restart). SIGINT and
SIGTERM are forwarded to COMMAND; elect waits for it (at most --grace), resigns and exits
with its status. SIGHUP, SIGUSR1 and SIGUSR2 reach each of COMMAND's processes once, and
both go on. Do not start elect run from cron on many hosts: each waiter would win
in turn and run the job again; use --no-wait or elect lease.`,
		`  elect run --url etcd://127.0.0.1:2379/myapp --ttl 10s mailer -- ./mailer --queue outbox
  ELECTION_URL=redis://127.0.0.1:6379 elect run --restart on-failure reindexer -- sh -c 'exec ./reindex'
  elect run --no-wait --url consul://127.0.0.1:8500 nightly-report -- ./report.sh   # from cron
`, 1, true)
	f := &commonFlags{meta: metaFlag{}}
	c.flags = f
	c.fs.StringVar(&f.id, "id", "", "this candidate's `ID`, shown to observers (default: host, pid and a random suffix)")
	c.fs.Var(f.meta, "meta", "`key=value` metadata shown with the leader; repeatable (env: comma-separated)")
	c.fs.DurationVar(&f.ttl, "ttl", 0, "claim `TTL` (default: the URL's ttl, else 10s)")
	c.fs.DurationVar(&f.grace, "grace", 0, "time between SIGTERM and SIGKILL (default min(TTL/4, 10s)); checked against the TTL")
	c.fs.StringVar(&f.restart, "restart", restartNever, "when COMMAND exits: never, on-failure or always campaign again")
	c.fs.DurationVar(&f.backoff, "backoff", time.Second, "first delay before campaigning again after COMMAND exited")
	c.fs.DurationVar(&f.backoffMax, "backoff-max", 30*time.Second, "longest delay between restarts; a COMMAND that ran this long resets the delay")
	c.fs.BoolVar(&f.noWait, "no-wait", false, "try once: exit 75 if another holds the election, 76 if the term is lost")
	return c
}

// openStore opens --url. It returns an exit code when it fails.
func openStore(c *cli) (election.Backend, election.Config, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, cfg, err := election.Open(ctx, c.url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "elect %s: %v\n", c.name, err)
		if errors.Is(err, election.ErrInvalidArgument) {
			return nil, cfg, exitUsage
		}
		return nil, cfg, exitUnavailable
	}
	return b, cfg, 0
}

// lookCommand checks that the command can be run before campaigning.
func lookCommand(c *cli) int {
	if _, err := exec.LookPath(c.command[0]); err != nil {
		fmt.Fprintf(os.Stderr, "elect %s: %v\n", c.name, err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return exitNotFound
		}
		return exitNoExec
	}
	return 0
}

func eventHook(c *cli, renewed chan struct{}) func(election.Event) {
	var verbose func(election.Event)
	if c.verbose {
		verbose = slogevents.Handler(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	}
	return func(ev election.Event) {
		if ev.Kind == election.EventRenewed {
			select {
			case renewed <- struct{}{}:
			default:
			}
		}
		if verbose != nil {
			verbose(ev)
		}
	}
}

func isStop(sig os.Signal) bool { return sig == syscall.SIGINT || sig == syscall.SIGTERM }

func runMain(c *cli) int {
	f := c.flags
	log := &logger{w: os.Stderr}
	name := c.pos[0]
	switch f.restart {
	case restartNever, restartOnFailure, restartAlways:
	default:
		fmt.Fprintf(os.Stderr, "elect run: --restart %q: want never, on-failure or always\n", f.restart)
		return exitUsage
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"backoff", f.backoff}, {"backoff-max", f.backoffMax}} {
		if err := positive(d.name, d.v); err != nil {
			fmt.Fprintf(os.Stderr, "elect run: %v\n", err)
			return exitUsage
		}
	}
	if f.ttl < 0 {
		fmt.Fprintf(os.Stderr, "elect run: --ttl %v is not positive\n", f.ttl)
		return exitUsage
	}
	if code := lookCommand(c); code != 0 {
		return code
	}
	if err := becomeSubreaper(); err != nil {
		fmt.Fprintf(os.Stderr, "elect run: %v\n", err)
		return exitFailed
	}
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, forwarded...)

	b, cfg, code := openStore(c)
	if code != 0 {
		return code
	}
	defer func() { _ = election.CloseBackend(b) }()
	if f.ttl > 0 {
		cfg.TTL = f.ttl
	}
	renewed := make(chan struct{}, 1)
	cfg.OnEvent = eventHook(c, renewed)
	el, err := election.New(b, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "elect run: %v\n", err)
		return exitUsage
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), el.Config().TTL)
		defer cancel()
		_ = el.Close(ctx)
	}()
	ec := el.Config()
	plan := gracePlan{ttl: ec.TTL, drift: ec.DriftMargin, interval: ec.RenewInterval, timeout: ec.RenewTimeout, jitter: ec.RenewJitter}
	grace := f.grace
	if grace == 0 {
		grace = plan.defaultGrace()
	}
	if err := plan.check(grace); err != nil {
		fmt.Fprintf(os.Stderr, "elect run: %v\n", err)
		return exitUsage
	}
	dir, err := os.MkdirTemp("", "elect-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "elect run: %v\n", err)
		return exitFailed
	}
	defer os.RemoveAll(dir)
	deadlineFile := filepath.Join(dir, "deadline")

	stopCandidate := func(cand *election.Candidate) {
		ctx, cancel := context.WithTimeout(context.Background(), ec.TTL)
		defer cancel()
		if err := cand.Stop(ctx); err != nil {
			log.infof("resign: %v", err)
		}
	}
	delay := f.backoff
	for {
		r := &round{sigs: make(chan os.Signal, 8), result: make(chan roundResult, 1)}
		r.spec = func(t election.Term) childSpec {
			return childSpec{
				argv: c.command,
				env: []string{envName + "=" + name, envID + "=" + t.ID,
					envFence + "=" + strconv.FormatUint(t.Fence, 10), envDeadlineFile + "=" + deadlineFile},
				grace: grace, killMargin: plan.killMargin(), deadlineFile: deadlineFile, log: log,
			}
		}
		r.renewed, r.log = renewed, log
		cand, err := el.NewCandidate(election.CandidateConfig{Name: name, ID: f.id, Metadata: f.meta,
			Handlers: []election.Handler{r.handle}})
		if err != nil {
			fmt.Fprintf(os.Stderr, "elect run: %v\n", err)
			return exitUsage
		}
		events := cand.Events()
		_ = cand.Start(context.Background())
		if f.noWait && !cand.IsLeader() {
			holder, known := cand.Leader()
			r.shut()
			taken := false
			for len(events) > 0 {
				taken = taken || (<-events).Kind == election.EventClaimTaken
			}
			stopCandidate(cand)
			if known && holder.ID != cand.ID() {
				fmt.Fprintf(os.Stderr, "elect run: %q is held by %q (fence %d)\n", name, holder.ID, holder.Fence)
				return exitTaken
			}
			if taken {
				fmt.Fprintf(os.Stderr, "elect run: %q is not free: the store refuses claims for now\n", name)
				return exitTaken
			}
			fmt.Fprintf(os.Stderr, "elect run: %q: the claim did not succeed (store unavailable?)\n", name)
			return exitUnavailable
		}
		if !cand.IsLeader() {
			log.infof("campaigning in %q as %q", name, cand.ID())
		}
		var res roundResult
		stopAsked := false
	wait:
		for {
			select {
			case res = <-r.result:
				break wait
			case sig := <-sigc:
				if !isStop(sig) {
					r.pass(sig)
					continue
				}
				stopAsked = true
				if r.stop(sig) {
					continue // the command runs: wait for it
				}
				stopCandidate(cand)
				return exitOK
			}
		}
		stopCandidate(cand)
		if res.err != nil {
			fmt.Fprintf(os.Stderr, "elect run: %v\n", res.err)
			return exitFailed
		}
		out := res.out
		switch {
		case stopAsked || out.signalled:
			return out.status
		case out.lost && f.noWait:
			log.infof("the term was lost; the command was stopped (status %d)", out.status)
			return exitLost
		case out.lost:
			log.infof("the term was lost; the command was stopped (status %d); campaigning again", out.status)
			continue
		}
		log.infof("the command exited with status %d after %v; resigned", out.status, out.ran.Round(time.Millisecond))
		if f.restart == restartNever || (f.restart == restartOnFailure && out.status == 0) {
			return out.status
		}
		if out.ran >= f.backoffMax {
			delay = f.backoff
		}
		log.infof("campaigning again in %v (--restart %s)", delay, f.restart)
		timer := time.NewTimer(delay)
	sleep:
		for {
			select {
			case <-timer.C:
				break sleep
			case sig := <-sigc:
				if isStop(sig) {
					return exitOK
				}
			}
		}
		delay = min(delay*2, f.backoffMax)
	}
}

// round is one campaign of elect run: its handler runs the command at most
// once, in the first term, unless elect is stopping.
type round struct {
	spec    func(election.Term) childSpec
	renewed chan struct{}
	log     *logger

	mu       sync.Mutex
	stopping bool // elect got SIGINT or SIGTERM, or the round is over
	used     bool
	running  bool
	sigs     chan os.Signal
	result   chan roundResult
}

type roundResult struct {
	out outcome
	err error
}

func (r *round) handle(ctx context.Context, t election.Term) {
	r.mu.Lock()
	if r.stopping || r.used {
		r.mu.Unlock()
		return
	}
	r.used, r.running = true, true
	r.mu.Unlock()
	r.log.infof("leading %q as %q (fence %d)", t.Election, t.ID, t.Fence)
	out, err := runChild(termHolding{t: t, ctx: ctx, renewed: r.renewed}, r.spec(t), r.sigs)
	r.mu.Lock()
	r.running = false
	r.mu.Unlock()
	r.result <- roundResult{out, err}
}

// stop marks the round stopping and forwards sig to the command if one
// runs; it reports whether one does.
func (r *round) stop(sig os.Signal) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopping = true
	if r.running {
		select {
		case r.sigs <- sig:
		default:
		}
	}
	return r.running
}

// pass forwards a signal that does not stop elect to a running command.
func (r *round) pass(sig os.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		select {
		case r.sigs <- sig:
		default:
		}
	}
}

// shut keeps the round's handler from starting a command.
func (r *round) shut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopping = true
}

// termHolding binds a command to a term: its deadline, its context, and
// the elector's renewals.
type termHolding struct {
	t       election.Term
	ctx     context.Context
	renewed chan struct{}
}

func (h termHolding) Deadline() time.Time      { return h.t.Deadline() }
func (h termHolding) Lost() <-chan struct{}    { return h.ctx.Done() }
func (h termHolding) Renewed() <-chan struct{} { return h.renewed }
