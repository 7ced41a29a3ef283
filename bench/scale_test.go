package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election/internal/teststore"
)

// The scale benchmark: n elections in one process, each led by one
// candidate (and, in the followers variant, waited on by a candidate of a
// second elector), on every store, side by side with etcd's concurrency
// and Consul's api.Lock. TestScale runs it when -scale.full is given, each
// case in a child process of its own (so that rusage, memory and
// goroutines are the case's alone and a hung case can be killed);
// without it, TestScale runs a small version on every go test and asserts counts
// only. See README.md, "Scale".
var (
	scaleFull     = flag.Bool("scale.full", false, "TestScale runs the whole scale benchmark; without it, the smoke version")
	scaleNs       = flag.String("scale.n", "1000,10000,100000", "TestScale: the numbers of elections")
	scaleConsulN  = flag.Int("scale.consul-max", 10000, "TestScale: the largest n run on Consul")
	scaleFollowN  = flag.Int("scale.followers-max", 10000, "TestScale: the largest n of the variants with followers (2n candidates in one process)")
	scaleStores   = flag.String("scale.stores", "memory,etcd,redis,consul", "TestScale: the stores, in order")
	scaleMatch    = flag.String("scale.run", "", "TestScale: run only the cases whose label (store/library/n=N) matches this regexp")
	scaleIdle     = flag.Duration("scale.idle", 30*time.Second, "TestScale: the idle window")
	scaleSettle   = flag.Duration("scale.settle", 5*time.Second, "TestScale: the pause between the last Start and the memory measurement and idle window")
	scaleParallel = flag.Int("scale.parallel", 64, "concurrent Start calls (and api.Lock Unlock calls)")
	scaleOut      = flag.String("scale.out", "", "TestScale: the results file (default results/scale-<UTC time>.txt)")
	scaleSmokeN   = flag.Int("scale.smoke-n", 1000, "TestScale without -scale.full: the number of elections")
	scaleProfiles = flag.String("scale.cpuprofile", "", "TestScale: a directory to write a CPU profile of each case's idle window to, as <store>-<library>-<n>.pprof")
)

// scaleChildEnv carries a case to a child process.
const scaleChildEnv = "ELECTION_BENCH_SCALE_CASE"

// scaleResultPrefix starts the line on which a child reports its result.
const scaleResultPrefix = "SCALE-RESULT "

// TestMain runs one case of TestScale and exits when TestScale started
// this process as a child for it (scaleChildEnv set); otherwise it runs
// the tests.
func TestMain(m *testing.M) {
	raw := os.Getenv(scaleChildEnv)
	if raw == "" {
		os.Exit(m.Run())
	}
	flag.Parse()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	var c scaleCase
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		logf("scale child: %v", err)
		os.Exit(1)
	}
	r, err := runScaleCase(context.Background(), c, logf)
	if err != nil {
		logf("scale child: %v", err)
		os.Exit(1)
	}
	out, err := json.Marshal(r)
	if err != nil {
		logf("scale child: %v", err)
		os.Exit(1)
	}
	fmt.Printf("\n%s%s\n", scaleResultPrefix, out)
	os.Exit(0)
}

// scaleSmoke starts -scale.smoke-n elections of ours on every store,
// leaders alone and then with followers, idles a few seconds and closes.
// It asserts counts only: every leader elected, no Start error, no loss
// and no takeover, Close returns nil and leaves no goroutine. No figure is
// asserted: those belong to the full benchmark.
func scaleSmoke(t *testing.T) {
	// Redis first: ours waits out its restart quarantine (one TTL after the
	// server started) before the first claim; the other stores run
	// meanwhile.
	kinds := []string{"redis", "memory", "etcd", "consul"}
	addrs := map[string]string{}
	var redisUp time.Time
	for _, kind := range kinds {
		switch kind {
		case "redis":
			addrs[kind] = teststore.StartRedis(t, teststore.RedisOptions{}).Addr
			redisUp = time.Now()
		case "etcd":
			addrs[kind] = teststore.StartEtcd(t, teststore.EtcdOptions{}).Addr
		case "consul":
			addrs[kind] = teststore.StartConsul(t, teststore.ConsulOptions{}).Addr
		}
	}
	kinds = append(kinds[1:], "redis")
	for _, kind := range kinds {
		for _, followers := range []bool{false, true} {
			c := scaleCase{
				Store: kind, Addr: addrs[kind], Library: "election", Followers: followers, N: *scaleSmokeN,
				Idle: 2 * time.Second, Settle: time.Second, Parallel: *scaleParallel, NoOps: true,
				ElectTimeout: 30 * time.Second, Stall: 10 * time.Second, CloseTimeout: 30 * time.Second,
			}
			t.Run(strings.TrimPrefix(c.label(), ""), func(t *testing.T) {
				if kind == "redis" {
					waitRedisQuarantine(t.Context(), redisUp)
				}
				r, err := runScaleCase(t.Context(), c, t.Logf)
				if err != nil {
					t.Fatal(err)
				}
				if !r.AllElected {
					t.Errorf("%d of %d leaders elected", r.Elected, c.N)
				}
				if r.StartErrors != 0 {
					t.Errorf("%d Start calls failed", r.StartErrors)
				}
				if r.TotalLosses != 0 || r.IdleTakeover != 0 {
					t.Errorf("%d leadership losses and %d takeovers by followers, want none", r.TotalLosses, r.IdleTakeover)
				}
				if r.CloseErr != "" {
					t.Errorf("Close: %s", r.CloseErr)
				}
				if r.GoroutinesLeft > 0 {
					t.Errorf("%d goroutines left after Close", r.GoroutinesLeft)
				}
				if t.Failed() {
					t.Logf("errors the library reported: %v", r.Errors)
				}
			})
		}
	}
}

// waitRedisQuarantine waits until redis-server has been up for one TTL and
// two seconds, so that ours' first claim does not wait out the restart
// quarantine (redis.Config.Quarantine) inside a measurement.
func waitRedisQuarantine(ctx context.Context, up time.Time) {
	_ = sleepCtx(ctx, time.Until(up.Add(scaleTTL+2*time.Second)))
}

// TestScale runs the scale smoke (scaleSmoke: counts only, in every go
// test run) or, with -scale.full, the whole benchmark (scaleFull).
func TestScale(t *testing.T) {
	if *scaleFull {
		scaleBenchmark(t)
	} else {
		scaleSmoke(t)
	}
}

// scaleBenchmark runs the scale benchmark and writes its table to
// -scale.out. Each case runs in a child process against a server this
// test started; a case that fails (a library that cannot elect every
// leader, a Close that does not return) is reported in the table.
func scaleBenchmark(t *testing.T) {
	var match *regexp.Regexp
	if *scaleMatch != "" {
		match = regexp.MustCompile(*scaleMatch)
	}
	var ns []int
	for f := range strings.SplitSeq(*scaleNs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			t.Fatalf("-scale.n: %q", f)
		}
		ns = append(ns, n)
	}
	out := *scaleOut
	if out == "" {
		out = filepath.Join("results", "scale-"+time.Now().UTC().Format("20060102-1504")+".txt")
	}
	header, footer := scaleHeader(), ""
	var results []scaleResult
	write := func() {
		if err := os.WriteFile(out, []byte(header+scaleTable(results)+footer), 0o644); err != nil {
			t.Error(err)
		}
	}
	for _, kind := range strings.Split(*scaleStores, ",") {
		var addr string
		var redisUp time.Time
		for _, n := range ns {
			if kind == "consul" && n > *scaleConsulN {
				continue
			}
			for _, lib := range scaleLibraries {
				if !slices.Contains(lib.stores, kind) || lib.followers && (n > *scaleFollowN || kind == "memory") {
					continue
				}
				c := scaleCase{
					Store: kind, Library: lib.name, Followers: lib.followers, N: n,
					Idle: *scaleIdle, Settle: *scaleSettle, Parallel: *scaleParallel,
					ElectTimeout: 60*time.Second + time.Duration(n)*time.Millisecond, Stall: 20 * time.Second,
					CloseTimeout: 60*time.Second + time.Duration(n)*time.Millisecond,
				}
				if match != nil && !match.MatchString(c.label()) {
					continue
				}
				if addr == "" && kind != "memory" {
					addr = startScaleStore(t, kind)
					redisUp = time.Now()
				}
				if kind == "redis" {
					waitRedisQuarantine(t.Context(), redisUp)
				}
				c.Addr = addr
				if *scaleProfiles != "" {
					c.CPUProfile = filepath.Join(*scaleProfiles, strings.NewReplacer("/", "-", "=", "", " ", "").Replace(c.label())+".pprof")
				}
				r := runScaleChild(t, c)
				t.Logf("%s", scaleTable([]scaleResult{r}))
				results = append(results, r)
				write()
			}
		}
	}
	footer = fmt.Sprintf("\n# load average after the run: %s\n", loadAverage())
	write()
	t.Logf("wrote %s", out)
}

func startScaleStore(t *testing.T, kind string) string {
	switch kind {
	case "etcd":
		return teststore.StartEtcd(t, teststore.EtcdOptions{}).Addr
	case "redis":
		return teststore.StartRedis(t, teststore.RedisOptions{}).Addr
	case "consul":
		// The agent's default limits (http_max_conns_per_client 200, and
		// the rest): only session_ttl_min is lowered, to 1s, which
		// no library here uses (every TTL is 10s).
		return teststore.StartConsul(t, teststore.ConsulOptions{}).Addr
	}
	t.Fatalf("unknown store %q", kind)
	return ""
}

// runScaleChild runs c in a child process and returns its result; a child
// that fails or does not finish in time is reported in the result's
// Errors.
func runScaleChild(t *testing.T, c scaleCase) scaleResult {
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	limit := 2*c.ElectTimeout + c.Idle + consulInterval + c.CloseTimeout + 2*time.Minute
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.timeout=0") // TestMain runs the case
	cmd.Env = append(os.Environ(), scaleChildEnv+"="+string(raw))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stdout
	t.Logf("%s: child process started", c.label())
	runErr := cmd.Run()
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), scaleResultPrefix); ok {
			var r scaleResult
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%s: %v", c.label(), err)
			}
			return r
		}
	}
	tail := stdout.String()
	if len(tail) > 2000 {
		tail = tail[len(tail)-2000:]
	}
	t.Logf("%s: child failed: %v\n%s", c.label(), runErr, tail)
	why := fmt.Sprintf("child process: %v", runErr)
	if ctx.Err() != nil {
		why = fmt.Sprintf("child process killed after %v", limit)
	}
	return scaleResult{Case: c, Errors: map[string]int{why: 1}}
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// scaleHeader describes the run: when, the commit of the library measured
// (the module ../), uncommitted changes to it, the machine and its load.
func scaleHeader() string {
	var b strings.Builder
	git := func(args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", ".."}, args...)...).Output()
		if err != nil {
			return "unknown"
		}
		return strings.TrimSpace(string(out))
	}
	fmt.Fprintf(&b, "# scale benchmark, %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "# library: %s (%s), %s\n", git("rev-parse", "--short", "HEAD"), git("log", "-1", "--format=%s"), git("rev-parse", "--show-toplevel"))
	if dirty := git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench"); dirty != "" {
		fmt.Fprintf(&b, "# uncommitted changes outside bench/ (measured as they were): %s\n", strings.Join(strings.Fields(dirty), " "))
	}
	hostCPU := "unknown"
	if cpu, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(cpu), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				hostCPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	fmt.Fprintf(&b, "# machine: %d cores (%s), loopback, single-node stores; load average before the run: %s\n", nproc(), hostCPU, loadAverage())
	fmt.Fprintf(&b, "# flags: -scale.n %s -scale.consul-max %d -scale.followers-max %d -scale.stores %s -scale.idle %v -scale.parallel %d",
		*scaleNs, *scaleConsulN, *scaleFollowN, *scaleStores, *scaleIdle, *scaleParallel)
	fmt.Fprintf(&b, " -scale.settle %v", *scaleSettle)
	if *scaleMatch != "" {
		fmt.Fprintf(&b, " -scale.run %q", *scaleMatch)
	}
	b.WriteString("\n\n")
	return b.String()
}

func nproc() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// scaleTable formats results as one markdown table, then the store
// operations and the errors of each case.
func scaleTable(results []scaleResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| store | library | n | candidates | elect all (s) | heap+stack KiB/candidate | goroutines/candidate | idle CPU (%% of a core) | load avg (1 min) | store ops per %v | losses while idle | Close (s) | notes |\n",
		renewInterval.Round(10*time.Millisecond))
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range results {
		c := r.Case
		lib := c.Library
		if c.Followers {
			lib += " + followers"
		}
		var notes []string
		dash := "—"
		elect, mem, gor, cpu, load, ops, losses, closeT := dash, dash, dash, dash, dash, dash, dash, dash
		if r.Candidates > 0 {
			if r.AllElected {
				elect = fmt.Sprintf("%.2f", r.ElectTime.Seconds())
				mem = fmt.Sprintf("%.1f", float64(r.HeapStackBytes)/1024/float64(r.Candidates))
				gor = fmt.Sprintf("%.2f", float64(r.Goroutines)/float64(r.Candidates))
			} else {
				notes = append(notes, fmt.Sprintf("**%d of %d elected**, gave up after %.0fs", r.Elected, c.N, r.ElectTime.Seconds()))
			}
			if c.Followers && r.AllElected {
				notes = append(notes, fmt.Sprintf("followers' Starts %.2fs", r.FollowersStart.Seconds()))
			}
			if r.Idled {
				cpu = fmt.Sprintf("%.2f", r.cpuPercent())
				if r.IdleGC+r.IdleScavenge > 0 {
					notes = append(notes, fmt.Sprintf("idle CPU of Go's GC %.2f%%, scavenger %.2f%%", r.percentOfIdle(r.IdleGC), r.percentOfIdle(r.IdleScavenge)))
				}
				load = r.IdleLoad
				losses = strconv.FormatInt(r.IdleLosses, 10)
				if r.IdleTakeover > 0 {
					notes = append(notes, fmt.Sprintf("%d takeovers by followers", r.IdleTakeover))
				}
			}
			if r.Ops != nil {
				ops = fmtCount(r.opsPerInterval())
			} else if r.OpsErr != "" {
				notes = append(notes, "ops not counted: "+r.OpsErr)
			}
			closeT = fmt.Sprintf("%.2f", r.CloseTime.Seconds())
			if r.StartErrors > 0 {
				notes = append(notes, fmt.Sprintf("%d start calls failed", r.StartErrors))
			}
			if r.TotalLosses > r.IdleLosses {
				notes = append(notes, fmt.Sprintf("%d losses in all", r.TotalLosses))
			}
			if r.CloseLosses > 0 {
				notes = append(notes, fmt.Sprintf("%d leaders lost (not released) during Close", r.CloseLosses))
			}
			if r.CloseErr != "" {
				notes = append(notes, "**Close returned an error** (below)")
			}
			if r.GoroutinesLeft > 0 {
				notes = append(notes, fmt.Sprintf("%d goroutines left after Close", r.GoroutinesLeft))
			}
		} else {
			notes = append(notes, "**not measured**")
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			c.Store, lib, c.N, max(r.Candidates, c.N), elect, mem, gor, cpu, load, ops, losses, closeT, strings.Join(notes, "; "))
	}
	var details []string
	for _, r := range results {
		label := r.Case.label()
		if r.Ops != nil {
			details = append(details, fmt.Sprintf("- %s, store ops per %v (counted over %v): %s", label, renewInterval.Round(10*time.Millisecond), r.Ops.Window.Round(time.Millisecond), r.Ops.Breakdown))
		}
		if r.CloseErr != "" {
			details = append(details, fmt.Sprintf("- %s, Close: %s", label, r.CloseErr))
		}
		for _, e := range slices.Sorted(mapKeys(r.Errors)) {
			details = append(details, fmt.Sprintf("- %s, error ×%d: %s", label, r.Errors[e], e))
		}
	}
	if len(details) > 0 {
		b.WriteString("\n" + strings.Join(details, "\n") + "\n")
	}
	return b.String()
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
