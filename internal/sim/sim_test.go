package sim

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// raceSeeds, when set (race builds), is the number of seeds run unless
// -sim.seeds is given.
var raceSeeds int

var (
	flagSeeds = flag.Int("sim.seeds", 10000, "number of seeds TestSimulation runs (1,000 by default under -race)")
	flagFirst = flag.Uint64("sim.first", 1, "the first seed TestSimulation runs")
	flagSeed  = flag.Uint64("sim.seed", 0, "run only this seed, and print its schedule")
)

// runSeed runs one seed in a bubble of its own. A bubble that deadlocks
// (every goroutine blocked for ever, or some left when the run returned)
// is a failure of the seed, not a crash of the test.
func runSeed(t *testing.T, seed uint64, opts Options) (res Result) {
	res.Seed = seed
	defer func() {
		if r := recover(); r != nil {
			// The bubble's goroutines are still there, blocked: show where.
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			var stuck []string
			for _, g := range strings.Split(string(buf), "\n\n") {
				if strings.Contains(g, "electionkit/election") && strings.Contains(g, "durable") {
					stuck = append(stuck, g)
				}
			}
			res.Violations = append(res.Violations, fmt.Sprintf("bubble: %v; blocked:\n%s", r, strings.Join(stuck, "\n\n")))
		}
	}()
	synctest.Test(t, func(t *testing.T) {
		res = Run(seed, opts)
	})
	return res
}

// replayCommand is the one-line command that replays seed.
func replayCommand(seed uint64) string {
	return fmt.Sprintf("go test ./internal/sim -run 'TestSimulation$' -count=1 -v -sim.seed=%d", seed)
}

// TestSimulation runs -sim.seeds seeded schedules (10,000 by default, as CI
// does) and checks each history: no two handlers of an election at once
// unless an overrun was reported, fences that only grow, no zombie claims,
// a leader once faults heal, no deadlocked call, no goroutine left. A
// failing seed is replayed ten times to say how often it fails, and
// printed with the command that replays it.
func TestSimulation(t *testing.T) {
	if *flagSeed != 0 {
		res := runSeed(t, *flagSeed, Options{Trace: true})
		t.Logf("%s\n%d terms, %d overruns reported\n%s", res.Plan, res.Terms, res.Overruns, res.Trace)
		for _, v := range res.Violations {
			t.Error(v)
		}
		return
	}
	var (
		next     atomic.Uint64
		ran      atomic.Int64
		failures atomic.Int64
		terms    atomic.Int64
		overruns atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		failed   []Result
	)
	next.Store(*flagFirst)
	last := *flagFirst + uint64(*flagSeeds)
	began := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seed := next.Add(1) - 1
				if seed >= last || failures.Load() >= 3 {
					return
				}
				res := runSeed(t, seed, Options{})
				ran.Add(1)
				terms.Add(int64(res.Terms))
				overruns.Add(int64(res.Overruns))
				if res.Failed() {
					failures.Add(1)
					mu.Lock()
					failed = append(failed, res)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	// It stops at the third failure: say how many seeds it ran, not how
	// many it was asked for.
	t.Logf("%d of %d seeds from %d in %v: %d terms, %d overruns reported, %d seeds failed",
		ran.Load(), *flagSeeds, *flagFirst, time.Since(began).Round(time.Millisecond), terms.Load(), overruns.Load(), len(failed))
	for _, res := range failed {
		replays := 0
		for range 10 {
			if runSeed(t, res.Seed, Options{}).Failed() {
				replays++
			}
		}
		t.Errorf("seed %d failed (the replay fails %d of 10 times): %s\n%s\n  %s",
			res.Seed, replays, replayCommand(res.Seed), res.Plan, strings.Join(res.Violations, "\n  "))
	}
}

// TestCheckerCatchesSkewBeyondDrift proves the checker can fail: with one
// elector's clock running slower than the store's by twice its drift
// margin, which the safety rule does not cover, some seeds must show two
// leaders at once, and the checker must say so.
func TestCheckerCatchesSkewBeyondDrift(t *testing.T) {
	caught := 0
	for seed := uint64(1); seed <= 200 && caught == 0; seed++ {
		res := runSeed(t, seed, Options{SkewBeyondDrift: true})
		for _, v := range res.Violations {
			if strings.HasPrefix(v, "exclusion:") {
				caught++
				t.Logf("seed %d: %s", seed, v)
				break
			}
		}
	}
	if caught == 0 {
		t.Fatal("200 seeds with a clock skewed beyond the drift margin showed no overlap: the checker cannot fail")
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "sim.seeds" })
	if raceSeeds > 0 && !given {
		*flagSeeds = raceSeeds
	}
	os.Exit(m.Run())
}
