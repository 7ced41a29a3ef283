package etcd_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
	"github.com/electionkit/election/internal/procstat"
)

// wireCounter is a gRPC stats handler that counts the messages and wire
// bytes the client sends and receives, unary calls and stream messages
// alike (a keep-alive, a progress request and its notification each count).
type wireCounter struct {
	msgs, bytes atomic.Int64
	calls       atomic.Int64
}

func (w *wireCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (w *wireCounter) HandleRPC(_ context.Context, s stats.RPCStats) {
	switch p := s.(type) {
	case *stats.Begin:
		w.calls.Add(1)
	case *stats.OutPayload:
		w.msgs.Add(1)
		w.bytes.Add(int64(p.WireLength))
	case *stats.InPayload:
		w.msgs.Add(1)
		w.bytes.Add(int64(p.WireLength))
	}
}
func (w *wireCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (w *wireCounter) HandleConn(context.Context, stats.ConnStats)                       {}

// TestScaleProbe measures n candidates in one process, each leading its own
// election through the public API at the default TTL (10s, renew interval
// TTL/3), idle for ELECTION_ETCD_SCALE_IDLE (default 30s): leadership losses,
// goroutines and heap+stack per election, the process's CPU (rusage) and
// the client's gRPC messages and wire bytes per renew interval. It is a
// probe, not a timed test: it asserts the counts (all elected, no loss) and
// logs the figures. Run with ELECTION_ETCD_SCALE_N=10000,100000 (without -race).
func TestScaleProbe(t *testing.T) {
	// Without ELECTION_ETCD_SCALE_N, a small instance runs with the other
	// tests: its counts are asserted, its figures mean little.
	env, idle := os.Getenv("ELECTION_ETCD_SCALE_N"), 30*time.Second
	if env == "" {
		env, idle = "200", 4*time.Second
	}
	if d, err := time.ParseDuration(os.Getenv("ELECTION_ETCD_SCALE_IDLE")); err == nil {
		idle = d
	}
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("ELECTION_ETCD_SCALE_N: %v", err)
		}
		t.Run(fmt.Sprint(n), func(t *testing.T) { probeScale(t, n, idle) })
		t.Run(fmt.Sprintf("%d-backend-only", n), func(t *testing.T) { probeBackend(t, n) })
	}
}

func probeScale(t *testing.T, n int, idle time.Duration) {
	srv := startEtcd(t, etcdOptions{defaultRaftTiming: true})
	wire := &wireCounter{}
	client, err := clientv3.New(clientv3.Config{
		Endpoints: []string{srv.addr}, DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
		DialKeepAliveTime: 5 * time.Second, DialKeepAliveTimeout: 3 * time.Second,
		DialOptions:        []grpc.DialOption{grpc.WithStatsHandler(wire)},
		MaxCallRecvMsgSize: 64 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	b := newBackend(t, etcd.Config{Client: client})
	var lost, renewals, watchFailed atomic.Int64
	el, err := election.New(b, election.Config{OnEvent: func(ev election.Event) {
		switch ev.Kind {
		case election.EventLost:
			if lost.Add(1) <= 3 {
				t.Logf("loss: %s at %v: %v", ev.Election, ev.Time.Format(time.StampMilli), ev.Err)
			}
		case election.EventRenewed:
			renewals.Add(1)
			if ev.Latency > time.Second || ev.Err != nil || os.Getenv("ELECTION_ETCD_SCALE_VERBOSE") != "" {
				t.Logf("renewal at %v: latency %v, %d claims, err %v", ev.Time.Format(time.StampMilli), ev.Latency, ev.Count, ev.Err)
			}
		case election.EventRenewFailed:
			t.Logf("renewal failed at %v: latency %v: %v", ev.Time.Format(time.StampMilli), ev.Latency, ev.Err)
		case election.EventWatchFailed:
			watchFailed.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	m0, g0 := procstat.HeapStack(), runtime.NumGoroutine()
	cands := make([]*election.Candidate, n)
	for i := range cands {
		if cands[i], err = el.NewCandidate(election.CandidateConfig{Name: fmt.Sprintf("shard-%06d", i), ID: "probe"}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if err := cands[i].Start(context.Background()); err != nil {
					t.Errorf("Start %d: %v", i, err)
				}
			}
		}()
	}
	wg.Wait()
	for _, c := range cands {
		for !c.IsLeader() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	elected := time.Since(start)
	time.Sleep(2 * time.Second) // watches established, first renewal done

	lost0, ren0 := lost.Load(), renewals.Load()
	msgs0, bytes0, calls0 := wire.msgs.Load(), wire.bytes.Load(), wire.calls.Load()
	cpu0, wall0 := procstat.CPU(), time.Now()
	time.Sleep(idle)
	cpu, wall := procstat.CPU()-cpu0, time.Since(wall0)
	msgs, bytes, calls := wire.msgs.Load()-msgs0, wire.bytes.Load()-bytes0, wire.calls.Load()-calls0
	renews := renewals.Load() - ren0
	idleLosses := lost.Load() - lost0 // before the GCs of the measurement
	m1, g1 := procstat.HeapStack(), runtime.NumGoroutine()

	leaders := 0
	for _, c := range cands {
		if c.IsLeader() {
			leaders++
		}
	}
	closeStart := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	closeErr := el.Close(ctx)
	closed := time.Since(closeStart)
	if closeErr != nil {
		// Not a loss: releases the store did not answer within OpTimeout
		// are left to the session's revoke (or its TTL).
		msg := closeErr.Error()
		t.Logf("n=%d: Close reported %d release errors, the first: %s", n, strings.Count(msg, "\n")+1, strings.SplitN(msg, "\n", 2)[0])
	}

	perRenew := func(v int64) float64 { return float64(v) / float64(max(renews, 1)) }
	t.Logf("n=%d: elected all in %v; idle %v: losses %d, watch failures %d, leaders at end %d",
		n, elected.Round(time.Millisecond), wall.Round(time.Second), idleLosses, watchFailed.Load(), leaders)
	t.Logf("n=%d: %.2f goroutines and %.2f KiB heap+stack per election (process total %d goroutines, %.1f MiB)",
		n, float64(g1-g0)/float64(n), (float64(m1)-float64(m0))/1024/float64(n), g1, float64(m1)/(1<<20))
	t.Logf("n=%d: process CPU %.2f%% of a core idle; %d renewals: per renew interval %.1f gRPC messages, %.0f wire bytes, %.1f new calls",
		n, 100*cpu.Seconds()/wall.Seconds(), renews, perRenew(msgs), perRenew(bytes), perRenew(calls))
	t.Logf("n=%d: Close %v", n, closed.Round(time.Millisecond))
	t.Logf("n=%d: losses in all: %d before the idle period, %d in it, %d after it (measurement and Close)",
		n, lost0, idleLosses, lost.Load()-lost0-idleLosses)
	if idleLosses != 0 || leaders != n {
		t.Errorf("n=%d: %d losses while idle, %d of %d leading at the end", n, idleLosses, leaders, n)
	}
}

// probeBackend measures what the backend itself costs per election: one
// session, n claims and n watches (Notify, as the core uses it, and
// Watch), with no core around them.
func probeBackend(t *testing.T, n int) {
	srv := startEtcd(t, etcdOptions{defaultRaftTiming: true})
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := openSession(t, b, 10*time.Second)
	// Keep the session alive while the claims and watches are made.
	renewing := make(chan struct{})
	defer close(renewing)
	go func() {
		for {
			select {
			case <-renewing:
				return
			case <-time.After(2 * time.Second):
				_ = s.Renew(ctx, nil)
			}
		}
	}()
	m0, g0 := procstat.HeapStack(), runtime.NumGoroutine()
	claims := make([]election.Claim, n)
	start0 := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				c, err := s.Claim(ctx, election.ClaimRequest{Name: fmt.Sprintf("shard-%06d", i), Token: fmt.Sprintf("token-%032d", i), ID: "probe"})
				if err != nil {
					t.Errorf("Claim %d: %v", i, err)
				}
				claims[i] = c
			}
		}()
	}
	wg.Wait()
	m1, g1 := procstat.HeapStack(), runtime.NumGoroutine()
	claimed := time.Since(start0)
	next.Store(0)
	start0 = time.Now()
	var events atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if _, err := b.Notify(ctx, fmt.Sprintf("shard-%06d", i), func(election.WatchEvent) { events.Add(1) }); err != nil {
					t.Errorf("Notify %d: %v", i, err)
				}
			}
		}()
	}
	wg.Wait()
	watched := time.Since(start0)
	m2, g2 := procstat.HeapStack(), runtime.NumGoroutine()
	start := time.Now()
	if err := s.Renew(ctx, claims); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	t.Logf("n=%d backend only: %d claims in %v (64 in parallel), %.2f KiB and %.2f goroutines per election; %d Notify watches in %v, %.2f KiB and %.3f goroutines per election; Renew of all %v",
		n, n, claimed.Round(time.Millisecond), (float64(m1)-float64(m0))/1024/float64(n), float64(g1-g0)/float64(n),
		n, watched.Round(time.Millisecond), (float64(m2)-float64(m1))/1024/float64(n), float64(g2-g1)/float64(n), time.Since(start).Round(time.Millisecond))
	if got := events.Load(); got != int64(n) {
		t.Errorf("%d first events for %d watches", got, n)
	}
}
