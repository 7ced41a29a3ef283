package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/electionkit/election/internal/procstat"
)

// scaleCase is one measurement: n elections of one library on one store.
type scaleCase struct {
	Store     string        // "memory", "etcd", "redis" or "consul"
	Addr      string        // the store's address; empty for memory
	Library   string        // scaleLibrary.name
	Followers bool          // a second elector's candidates wait on every election
	N         int           // elections
	Idle      time.Duration // the idle window
	Parallel  int           // concurrent Start calls
	// ElectTimeout bounds the wait for every leader; so does Stall, the
	// longest time without a new leader.
	ElectTimeout, Stall time.Duration
	// CloseTimeout bounds Close.
	CloseTimeout time.Duration
	// Settle is the pause after the last Start before memory is measured
	// and the idle window begins: watches still being set up and the first
	// renewals are start-up, not idle.
	Settle time.Duration
	// NoOps skips counting the store's operations (the smoke test: the
	// Consul meter idles up to one more metrics interval).
	NoOps bool
	// CPUProfile, when set, is the file the child writes a CPU profile of
	// its idle window to.
	CPUProfile string
}

func (c scaleCase) label() string {
	name := c.Library
	if c.Followers {
		name += "+followers"
	}
	return fmt.Sprintf("%s/%s/n=%d", c.Store, name, c.N)
}

func (c scaleCase) library() (scaleLibrary, error) {
	for _, l := range scaleLibraries {
		if l.name == c.Library && l.followers == c.Followers {
			return l, nil
		}
	}
	return scaleLibrary{}, fmt.Errorf("no library %q (followers %v)", c.Library, c.Followers)
}

// scaleResult is what one case measured. Every figure comes from the run;
// a zero that was not measured is flagged by the fields below it.
type scaleResult struct {
	Case       scaleCase
	Candidates int // N, or 2N with followers

	Elected        int64
	ElectTime      time.Duration // first Start call → the N-th leader took office
	FollowersStart time.Duration // with followers: their Start calls, all of them
	StartErrors    int64
	AllElected     bool

	// Memory and goroutines once every candidate has started, over the
	// baseline taken before the clients were opened.
	HeapStackBytes int64 // HeapInuse + StackInuse after runtime.GC, minus the baseline
	Goroutines     int

	// The idle window (absent when not every leader was elected).
	Idled    bool
	IdleWall time.Duration
	IdleCPU  time.Duration // rusage user + sys of this process
	// IdleGC and IdleScavenge are the Go runtime's estimates of the part
	// of IdleCPU its garbage collector and its scavenger used
	// (procstat.RuntimeCPU).
	IdleGC, IdleScavenge time.Duration
	Ops                  *opsSummary
	OpsErr               string
	IdleLosses           int64 // leadership losses in the idle window
	IdleTakeover         int64 // followers that took office in the idle window
	// IdleLoad is the machine's 1-minute load average at the end of the
	// idle window: other processes' load, which idle CPU figures are
	// sensitive to.
	IdleLoad string

	TotalLosses    int64 // over the whole case, before Close
	CloseLosses    int64 // leaders lost (not released) while Close ran
	StepDowns      int64
	CloseTime      time.Duration
	CloseErr       string
	GoroutinesLeft int // after Close, over the baseline, once settled (up to 10s)

	Errors map[string]int // distinct errors the library reported, with counts
}

// opsSummary is an opsReport in a form that survives JSON.
type opsSummary struct {
	Window    time.Duration
	Total     float64
	Breakdown string // per renew interval
}

// renewInterval is ours' default RenewInterval (TTL/3), the interval store
// operations are reported per; the peers renew with the same TTL.
const renewInterval = scaleTTL / 3

func (r scaleResult) opsPerInterval() float64 {
	if r.Ops == nil || r.Ops.Window == 0 {
		return 0
	}
	return r.Ops.Total * float64(renewInterval) / float64(r.Ops.Window)
}

func (r scaleResult) cpuPercent() float64 { return r.percentOfIdle(r.IdleCPU) }

// percentOfIdle is d as a percentage of a core over the idle window.
func (r scaleResult) percentOfIdle(d time.Duration) float64 {
	if r.IdleWall == 0 {
		return 0
	}
	return 100 * float64(d) / float64(r.IdleWall)
}

// runScaleCase measures one case in this process. It returns an error only
// when the case could not be measured at all (the library would not open);
// a library that fails under load is reported in the result.
func runScaleCase(ctx context.Context, c scaleCase, logf func(string, ...any)) (scaleResult, error) {
	lib, err := c.library()
	if err != nil {
		return scaleResult{}, err
	}
	r := scaleResult{Case: c, Candidates: c.N}
	if c.Followers {
		r.Candidates = 2 * c.N
	}
	counters := &scaleCounters{}
	baseGoroutines := runtime.NumGoroutine()
	baseMem := int64(procstat.HeapStack())

	pop, err := lib.open(ctx, c.Store, c.Addr, counters)
	if err != nil {
		return r, fmt.Errorf("%s: open: %w", c.label(), err)
	}

	// Leaders: parallel Starts, then wait until each took office.
	begin := time.Now()
	startCtx, cancelStarts := context.WithTimeout(ctx, c.ElectTimeout)
	var startErrs atomic.Int64
	started := make(chan struct{})
	go func() {
		defer close(started)
		runParallel(startCtx, c.N, c.Parallel, func(ctx context.Context, i int) {
			if err := pop.startLeader(ctx, i); err != nil {
				startErrs.Add(1)
				counters.noteErr(fmt.Errorf("start: %w", err))
			}
		})
	}()
	r.AllElected = waitElected(startCtx, counters, int64(c.N), c.Stall)
	r.Elected = counters.elected.Load()
	if r.AllElected {
		r.ElectTime = time.Unix(0, counters.lastElected.Load()).Sub(begin)
	} else {
		r.ElectTime = time.Since(begin)
	}
	logf("%s: %d of %d elected in %v", c.label(), r.Elected, c.N, r.ElectTime.Round(time.Millisecond))
	if r.AllElected && c.Followers {
		fbegin := time.Now()
		runParallel(startCtx, c.N, c.Parallel, func(ctx context.Context, i int) {
			if err := pop.startFollower(ctx, i); err != nil {
				startErrs.Add(1)
				counters.noteErr(fmt.Errorf("start follower: %w", err))
			}
		})
		r.FollowersStart = time.Since(fbegin)
		logf("%s: followers started in %v", c.label(), r.FollowersStart.Round(time.Millisecond))
	}
	cancelStarts()
	<-started
	r.StartErrors = startErrs.Load()

	if r.AllElected {
		_ = sleepCtx(ctx, c.Settle)
		r.HeapStackBytes = int64(procstat.HeapStack()) - baseMem
		r.Goroutines = runtime.NumGoroutine() - baseGoroutines
		// Return the memory the Starts freed to the OS now: left to the
		// runtime's scavenger, that one-off work (madvise, at up to about
		// 1% of a core) falls in the idle window; at 100,000 elections it
		// was over half of the window's CPU in a profile.
		debug.FreeOSMemory()

		var meter opsMeter
		if !c.NoOps {
			meter = newOpsMeter(c.Store, c.Addr)
		}
		if meter != nil {
			if err := meter.begin(ctx); err != nil {
				r.OpsErr = err.Error()
				meter = nil
			}
		}
		lost0, take0 := counters.lost.Load(), counters.takeovers.Load()
		wall0, cpu0 := time.Now(), procstat.CPU()
		gc0, scavenge0 := procstat.RuntimeCPU()
		stopProfile := startCPUProfile(c.CPUProfile, logf)
		_ = sleepCtx(ctx, c.Idle)
		stopProfile()
		r.IdleCPU, r.IdleWall = procstat.CPU()-cpu0, time.Since(wall0)
		gc, scavenge := procstat.RuntimeCPU()
		r.IdleGC, r.IdleScavenge = gc-gc0, scavenge-scavenge0
		r.IdleLoad = strings.Fields(loadAverage())[0]
		r.Idled = ctx.Err() == nil
		if meter != nil {
			rep, err := meter.end(ctx)
			if err != nil {
				r.OpsErr = err.Error()
			} else {
				r.Ops = &opsSummary{Window: rep.window, Total: rep.total(), Breakdown: rep.breakdown(renewInterval, 6)}
			}
		}
		// The Consul meter may idle up to one more metrics interval.
		r.IdleLosses, r.IdleTakeover = counters.lost.Load()-lost0, counters.takeovers.Load()-take0
		logf("%s: idle %v: %.2f%% of a core, %d losses", c.label(), r.IdleWall.Round(time.Millisecond), r.cpuPercent(), r.IdleLosses)
	}
	r.TotalLosses = counters.lost.Load()
	r.StepDowns = counters.stepDowns.Load()

	closeCtx, cancelClose := context.WithTimeout(context.Background(), c.CloseTimeout)
	closeBegin := time.Now()
	if err := pop.close(closeCtx); err != nil {
		r.CloseErr = summarizeErr(err)
	}
	r.CloseTime = time.Since(closeBegin)
	cancelClose()
	r.CloseLosses = counters.lost.Load() - r.TotalLosses
	logf("%s: closed in %v (err %v)", c.label(), r.CloseTime.Round(time.Millisecond), r.CloseErr)

	// Goroutines left behind: give exiting ones (connections closing) up
	// to 10s to finish.
	settle := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseGoroutines && time.Now().Before(settle) {
		time.Sleep(50 * time.Millisecond)
	}
	r.GoroutinesLeft = runtime.NumGoroutine() - baseGoroutines
	r.Errors = counters.errors()
	return r, nil
}

// waitElected waits until want leaders took office, ctx ends or none did
// for stall. It reports whether all did.
func waitElected(ctx context.Context, c *scaleCounters, want int64, stall time.Duration) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	last, lastChange := c.elected.Load(), time.Now()
	for {
		n := c.elected.Load()
		if n >= want {
			return true
		}
		if n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) > stall {
			return false
		}
		select {
		case <-ctx.Done():
			return c.elected.Load() >= want
		case <-t.C:
		}
	}
}

// summarizeErr shortens an error that joins many (one per candidate) to its
// first line and the number of lines.
func summarizeErr(err error) string {
	lines := strings.Split(err.Error(), "\n")
	s := shorten(lines[0], 300)
	if len(lines) > 1 {
		s += fmt.Sprintf(" (and %d more lines)", len(lines)-1)
	}
	return s
}

// startCPUProfile starts a CPU profile written to path, if path is set,
// and returns the function that stops it.
func startCPUProfile(path string, logf func(string, ...any)) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		logf("cpu profile: %v", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		logf("cpu profile: %v", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			logf("cpu profile: %v", err)
		}
	}
}
