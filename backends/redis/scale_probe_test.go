package redis

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/procstat"
)

// TestScaleProbe starts n candidates in one process, each leading its own
// election at the default TTL, sits idle, and reports what an idle
// election costs: leadership losses (must be 0), goroutines and
// heap+stack per election, the process's CPU (rusage) and the server's
// commands per renew interval (INFO commandstats). It is a probe, not a
// timed test: it fails only on losses or on candidates that never lead.
//
//	ELECTION_REDIS_SCALE=10000 go test -run TestScaleProbe -v -timeout 20m ./backends/redis
//	ELECTION_REDIS_SCALE=100000 ELECTION_REDIS_SCALE_IDLE=30s go test -run TestScaleProbe ...
//
// ELECTION_REDIS_SCALE_CPUPROFILE=file writes a CPU profile of the idle
// time.
func TestScaleProbe(t *testing.T) {
	n, idle := probeSize(t)
	srv := startServer(t)
	ctx := testContext(t, 30*time.Minute)
	client := goredis.NewClient(&goredis.Options{Addr: srv.addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })
	admin := srv.client(t)
	b := newBackend(t, client, Config{NoQuarantine: true})

	var losses, claimed atomic.Int64
	var lostMu sync.Mutex
	var lostSample []string
	el, err := election.New(b, election.Config{OnEvent: func(ev election.Event) {
		switch ev.Kind {
		case election.EventLost:
			losses.Add(1)
			lostMu.Lock()
			if len(lostSample) < 5 {
				lostSample = append(lostSample, fmt.Sprintf("%s at %s: %v: %v", ev.Election, ev.Time.Format("15:04:05.000"), ev.Reason, ev.Err))
			}
			lostMu.Unlock()
		case election.EventClaimed:
			claimed.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = el.Close(context.Background())
		}
	}()

	before := sample()
	start := time.Now()
	cands := make([]*election.Candidate, n)
	var wg sync.WaitGroup
	var startErr atomic.Value
	next := atomic.Int64{}
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := el.NewCandidate(election.CandidateConfig{Name: fmt.Sprintf("probe-%06d", i), ID: "probe"})
				if err == nil {
					err = c.Start(ctx)
				}
				if err != nil {
					startErr.Store(err)
					return
				}
				cands[i] = c
			}
		}()
	}
	wg.Wait()
	if err, _ := startErr.Load().(error); err != nil {
		t.Fatalf("start: %v", err)
	}
	for claimed.Load() < int64(n) {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d elected", claimed.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	elected := time.Since(start)
	time.Sleep(2 * time.Second) // let the claims' announcements settle
	lossesBefore := losses.Load()

	held := sample()
	stats0 := commandStats(t, ctx, admin)
	t0 := time.Now()
	if path := os.Getenv("ELECTION_REDIS_SCALE_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(idle)
	pprof.StopCPUProfile() // no-op without a profile
	stats1 := commandStats(t, ctx, admin)
	after := sample()
	wall := time.Since(t0)

	idleLosses := losses.Load()
	leading := 0
	for _, c := range cands {
		if c.IsLeader() {
			leading++
		}
	}
	renewInterval := election.DefaultTTL / 3
	intervals := float64(wall) / float64(renewInterval)
	t.Logf("n=%d elected all in %v; idle %v at TTL %v (renew interval %v)", n, elected.Round(time.Millisecond), wall.Round(time.Millisecond), election.DefaultTTL, renewInterval)
	t.Logf("losses while idle: %d (before idle: %d); leading at the end: %d of %d", losses.Load()-lossesBefore, lossesBefore, leading, n)
	t.Logf("goroutines per election: %.2f (%d total, %d before start)", float64(held.goroutines-before.goroutines)/float64(n), held.goroutines, before.goroutines)
	t.Logf("heap+stack per election: %.0f B (HeapInuse+StackInuse after GC: %d → %d)", (float64(held.mem)-float64(before.mem))/float64(n), before.mem, held.mem)
	cpu := after.cpu - held.cpu
	t.Logf("process CPU while idle: %v of %v wall = %.2f%% of one core", cpu.Round(time.Millisecond), wall.Round(time.Millisecond), 100*float64(cpu)/float64(wall))
	var lines []string
	total := 0.0
	for cmd, calls := range stats1 {
		d := calls - stats0[cmd]
		if d == 0 || cmd == "info" {
			continue
		}
		total += float64(d)
		lines = append(lines, fmt.Sprintf("%s %.1f", cmd, float64(d)/intervals))
	}
	sort.Strings(lines)
	t.Logf("server commands per renew interval: %.1f (%s)", total/intervals, strings.Join(lines, ", "))

	cstart := time.Now()
	if err := el.Close(ctx); err != nil {
		t.Logf("Close: %v", err) // reported, not judged: the probe judges the idle time
	}
	closed = true
	t.Logf("Close took %v; leadership losses during Close: %d", time.Since(cstart).Round(time.Millisecond), losses.Load()-idleLosses)
	lostMu.Lock()
	for _, l := range lostSample {
		t.Logf("first losses: %s", l)
	}
	lostMu.Unlock()
	if idleLosses != 0 || leading != n {
		t.Errorf("%d leadership losses before Close, %d of %d leading at the end; want 0 and all", idleLosses, leading, n)
	}
}

type probeSample struct {
	goroutines int
	mem        uint64
	cpu        time.Duration
}

func sample() probeSample {
	return probeSample{mem: procstat.HeapStack(), goroutines: runtime.NumGoroutine(), cpu: procstat.CPU()}
}

// commandStats returns the calls per command from INFO commandstats.
func commandStats(t *testing.T, ctx context.Context, admin *goredis.Client) map[string]int64 {
	t.Helper()
	info, err := admin.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, _ := strings.Cut(rest, ":")
		calls, _, _ := strings.Cut(strings.TrimPrefix(fields, "calls="), ",")
		out[name], _ = strconv.ParseInt(calls, 10, 64)
	}
	return out
}

// probeSize returns the probe's n and idle window from
// ELECTION_REDIS_SCALE and ELECTION_REDIS_SCALE_IDLE. Without them a small
// instance runs with the other tests: its counts are asserted, its figures
// mean little.
func probeSize(t *testing.T) (int, time.Duration) {
	n, idle := 200, 4*time.Second
	if v := os.Getenv("ELECTION_REDIS_SCALE"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			t.Fatalf("ELECTION_REDIS_SCALE: %q is not a positive count", v)
		}
		idle = 30 * time.Second
	}
	if d, err := time.ParseDuration(os.Getenv("ELECTION_REDIS_SCALE_IDLE")); err == nil {
		idle = d
	}
	return n, idle
}

// TestScaleProbeBackend is TestScaleProbe for the backend alone, without
// the core: one session holding n claims, n Notify watches of them (as the
// core makes for its leaders), and a Renew of all the claims every TTL/3,
// idle for the same time. It reports what the backend itself costs per
// election. Same environment variables.
func TestScaleProbeBackend(t *testing.T) {
	n, idle := probeSize(t)
	srv := startServer(t)
	ctx := testContext(t, 30*time.Minute)
	admin := srv.client(t)
	b := newBackend(t, srv.client(t), Config{NoQuarantine: true})
	ttl := election.DefaultTTL
	before := sample()
	s := openSession(t, ctx, b, ttl)
	claims := make([]election.Claim, n)
	var events atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	next := atomic.Int64{}
	wctx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	// Keep the session alive while claiming, as the core's renewals do.
	claiming, stopRenewing := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		for {
			select {
			case <-claiming.Done():
				return
			case <-time.After(ttl / 3):
				_ = s.Renew(claiming, nil)
			}
		}
	}()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				name := fmt.Sprintf("probe-%06d", i)
				if _, err := b.Notify(wctx, name, func(election.WatchEvent) { events.Add(1) }); err != nil {
					failed.Store(err)
					return
				}
				c, err := s.Claim(ctx, request(name, "probe"))
				if err != nil {
					failed.Store(err)
					return
				}
				claims[i] = c
			}
		}()
	}
	wg.Wait()
	stopRenewing()
	<-renewed
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	renew := func() {
		if err := s.Renew(ctx, claims); err != nil {
			t.Fatalf("Renew: %v", err)
		}
	}
	renew()
	time.Sleep(2 * time.Second) // the claims' announcements settle
	held := sample()
	eventsBefore := events.Load()
	stats0 := commandStats(t, ctx, admin)
	t0 := time.Now()
	for time.Since(t0) < idle {
		time.Sleep(ttl / 3)
		renew()
	}
	stats1 := commandStats(t, ctx, admin)
	after := sample()
	wall := time.Since(t0)
	intervals := float64(wall) / float64(ttl/3)
	total := 0.0
	for cmd, calls := range stats1 {
		if cmd != "info" {
			total += float64(calls - stats0[cmd])
		}
	}
	t.Logf("backend alone, n=%d: goroutines per election %.3f (%d total), heap+stack per election %.0f B",
		n, float64(held.goroutines-before.goroutines)/float64(n), held.goroutines, (float64(held.mem)-float64(before.mem))/float64(n))
	t.Logf("idle %v: CPU %.2f%% of one core, %.1f server commands per renew interval, %d watch events",
		wall.Round(time.Millisecond), 100*float64(after.cpu-held.cpu)/float64(wall), total/intervals, events.Load()-eventsBefore)
	if got := events.Load() - eventsBefore; got != 0 {
		t.Errorf("%d watch events while idle, want 0", got)
	}
}
