package consul

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/procstat"
)

// TestScaleProbe measures n candidates in one process on one agent, each
// leading its own election, idle at the core's default TTL (10s) and the
// backend's default WatchWait (30s): leadership losses (must be 0),
// goroutines and heap+stack per election, the process's own CPU (rusage)
// and the requests it sends the agent while idle. It is a probe, not a
// timing test, and runs only when asked, without -race (which inflates CPU
// and memory several times):
//
//	ELECTION_TEST_BIN=$PWD/bin ELECTION_CONSUL_SCALE=1000,10000 \
//	    go test -run TestScaleProbe -count 1 -timeout 30m -v ./backends/consul/
//
// ELECTION_CONSUL_SCALE_IDLE sets the idle window (default 20s). The
// figures are in README.md (Scale).
func TestScaleProbe(t *testing.T) {
	// Without ELECTION_CONSUL_SCALE, a small instance runs with the other
	// tests: its counts are asserted, its figures mean little.
	spec, idle := os.Getenv("ELECTION_CONSUL_SCALE"), 20*time.Second
	if spec == "" {
		spec, idle = "200", 4*time.Second
	}
	if v := os.Getenv("ELECTION_CONSUL_SCALE_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("ELECTION_CONSUL_SCALE_IDLE: %v", err)
		}
		idle = d
	}
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			t.Fatalf("ELECTION_CONSUL_SCALE: %q is not a positive count", f)
		}
		t.Run(strconv.Itoa(n), func(t *testing.T) { probe(t, n, idle) })
	}
}

func probe(t *testing.T, n int, idle time.Duration) {
	a := startAgent(t, agentOptions{})
	// The backend's own transport, as New builds it, behind a counter.
	ac := api.DefaultConfig()
	ac.Address = a.addr
	ac.Transport.MaxIdleConnsPerHost, ac.Transport.MaxConnsPerHost = maxAgentConns, maxAgentConns
	rec := &recorder{base: ac.Transport}
	client, err := api.NewClient(&api.Config{Address: a.addr, HttpClient: &http.Client{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Transport.CloseIdleConnections()
	b, err := New(Config{Client: client, MinTTL: testMinTTL})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	base := footprint()
	var losses, watchFailures, claimFailures atomic.Int64
	el, err := election.New(b, election.Config{OnEvent: func(ev election.Event) {
		switch ev.Kind {
		case election.EventLost:
			losses.Add(1)
		case election.EventWatchFailed:
			watchFailures.Add(1)
		case election.EventClaimFailed:
			claimFailures.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	cands := make([]*election.Candidate, n)
	for i := range cands {
		if cands[i], err = el.NewCandidate(election.CandidateConfig{Name: fmt.Sprintf("scale-%05d", i), ID: "probe"}); err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	var wg sync.WaitGroup
	work := make(chan *election.Candidate)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				if err := c.Start(context.Background()); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for _, c := range cands {
		work <- c
	}
	close(work)
	wg.Wait()
	waitFor(t, 5*time.Minute, "every candidate to lead", func() bool {
		for _, c := range cands {
			if !c.IsLeader() {
				return false
			}
		}
		return true
	})
	elected := time.Since(began)
	rec.mu.Lock()
	listings, listed := rec.listings, rec.listed
	rec.mu.Unlock()
	time.Sleep(3 * time.Second) // let the first event of every watch land
	lostBefore := losses.Load()

	cpu0, wall0 := procstat.CPU(), time.Now()
	reqs, bytes := rec.during(func() { time.Sleep(idle) })
	cpu, wall := procstat.CPU()-cpu0, time.Since(wall0)
	after := footprint()

	queries := b.watches.queries()
	stillLeading := 0
	for _, c := range cands {
		if c.IsLeader() {
			stillLeading++
		}
	}
	closeBegan := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Close releases every claim, each within the core's OpTimeout; one
	// that times out is retried in the background and goes with the
	// session anyway. Counted, not failed: Close's speed is the core's.
	closeErrs := 0
	if err := el.Close(ctx); err != nil {
		closeErrs = strings.Count(err.Error(), "\n") + 1
	}
	closed := time.Since(closeBegan)

	renewals := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, "PUT /v1/session/renew/") {
			renewals++
		}
	}
	perElection := func(v uint64) float64 { return float64(v-min(v, base.mem)) / float64(n) / 1024 }
	t.Logf("n=%d: all elected in %v (%d claim failures, %d watch failures; the watches' queries returned %d times, %.1f MB); idle %v: %d leadership losses, %d/%d still leading",
		n, elected.Round(time.Millisecond), claimFailures.Load(), watchFailures.Load(), listings, float64(listed)/1e6,
		wall.Round(time.Millisecond), losses.Load(), stillLeading, n)
	t.Logf("n=%d: goroutines %d (%.2f per election over %d at start); heap+stack %.1f KiB per election (heap %.1f, stack %.1f)",
		n, after.goroutines, float64(after.goroutines-base.goroutines)/float64(n), base.goroutines,
		perElection(after.mem), float64(after.heap-min(after.heap, base.heap))/float64(n)/1024,
		float64(after.stack-min(after.stack, base.stack))/float64(n)/1024)
	t.Logf("n=%d: CPU %.2f%% of a core over the idle window (%v user+sys); %d requests to the agent besides blocking queries (%d session renewals), %d response bytes; blocking queries: %d; Close %v, %d releases timed out",
		n, 100*cpu.Seconds()/wall.Seconds(), cpu.Round(time.Millisecond), len(reqs), renewals, bytes, queries,
		closed.Round(time.Millisecond), closeErrs)
	if lost := losses.Load(); lost != 0 || lostBefore != 0 || stillLeading != n {
		t.Fatalf("n=%d: %d leadership losses (%d before the idle window), %d of %d leading at its end", n, lost, lostBefore, stillLeading, n)
	}
}

type usage struct {
	goroutines       int
	mem, heap, stack uint64
}

// footprint returns the goroutines and the heap and stack in use after a
// GC: the measure of memory per election.
func footprint() usage {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{goroutines: runtime.NumGoroutine(), mem: ms.HeapInuse + ms.StackInuse, heap: ms.HeapInuse, stack: ms.StackInuse}
}
