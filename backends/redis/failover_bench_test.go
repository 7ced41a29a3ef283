package redis

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/faultproxy"
)

// BenchmarkFailoverWindow measures how long two leaders overlap when a
// primary fails with writes its replica did not get, with and without
// WaitReplicas (README "Failover window"). Each iteration starts a primary
// P and a replica R that replicates through a proxy, cuts that link, lets
// the scenario's writes reach P only, kills P and promotes R at once
// (REPLICAOF NO ONE, as Sentinel would after its down-after-milliseconds,
// which is left out: the figures are upper bounds, and a real failover's
// detection time comes off them). A candidate C then claims on R until it
// is elected. The overlap is how long the leader on P still held by its own
// deadline (the send time of its session's last successful renewal or
// opening + TTL − the core's drift margin TTL/10, as the core counts it)
// after C was elected; 0 when it had stepped down before.
//
//   - renewal: A holds (its claim replicated), the link is cut, A renews
//     for half a TTL; on R, A's session expires at its last replicated
//     renewal + TTL, then C is elected.
//   - claim: the link is cut, B claims on P; R never saw B, so C is
//     elected at once.
//
// Run: go test -run '^$' -bench FailoverWindow -benchtime 5x ./backends/redis
func BenchmarkFailoverWindow(b *testing.B) {
	const ttl = 2 * time.Second
	for _, scenario := range []string{"renewal", "claim"} {
		for _, wait := range []int{0, 1} {
			b.Run(scenario+"/wait_replicas="+string(rune('0'+wait)), func(b *testing.B) {
				var overlaps, failovers []time.Duration
				for b.Loop() {
					overlap, failover := failoverOnce(b, scenario, wait, ttl)
					overlaps = append(overlaps, overlap)
					failovers = append(failovers, failover)
				}
				b.ReportMetric(ms(mean(overlaps)), "overlap-ms")
				b.ReportMetric(ms(slices.Max(overlaps)), "max-overlap-ms")
				b.ReportMetric(ms(mean(failovers)), "elected-after-kill-ms")
			})
		}
	}
}

// failoverOnce runs one failover and returns the overlap and how long after
// P's kill C was elected.
func failoverOnce(b *testing.B, scenario string, wait int, ttl time.Duration) (overlap, elected time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	primary := startServer(b, "--repl-diskless-sync-delay", "0")
	link, err := faultproxy.New(primary.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer link.Close()
	host, port, _ := net.SplitHostPort(link.Addr())
	replica := startServer(b, "--replicaof", host, port)
	defer replica.proc.Stop(context.Background())
	waitReplicaOnline(b, ctx, primary, 1)
	onP, onR := primary.client(b), replica.client(b)

	// No quarantine: neither server restarts here, and both were started
	// moments ago, so one would hold every claim for up to 2s.
	cfg := Config{NoQuarantine: true, WaitReplicas: wait}
	if wait > 0 {
		cfg.WaitTimeout = 300 * time.Millisecond
	}
	bP, err := New(onP, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer bP.Close()
	name := "failover-window"
	var deadline time.Time // the leader on P holds until then; zero: none holds
	switch scenario {
	case "renewal":
		opened := time.Now()
		a, err := bP.OpenSession(ctx, ttl)
		if err != nil {
			b.Fatal(err)
		}
		// A term's deadline is counted from its session's last renewal
		// (here its opening), as the core counts it: a claim does not
		// extend the session.
		deadline = opened.Add(ttl - ttl/10)
		// Before the cut a WAIT can still time out on a loaded machine:
		// the claim is then retried with its token (a replay answers with
		// the stored fence, and waits again).
		var held election.Claim
		for attempt := 0; ; attempt++ {
			held, err = a.Claim(ctx, request(name, "a"))
			if err == nil {
				break
			}
			if !errors.Is(err, election.ErrUnavailable) || attempt == 10 {
				b.Fatalf("A's Claim before the cut: %v", err)
			}
		}
		for {
			if v, _ := onR.Get(ctx, keysFor(DefaultPrefix).claim(name)).Result(); v != "" {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := link.Cut(ctx); err != nil {
			b.Fatal(err)
		}
		for end := time.Now().Add(ttl / 2); time.Now().Before(end); time.Sleep(ttl / 6) {
			sent := time.Now()
			if err := a.Renew(ctx, []election.Claim{held}); err == nil {
				deadline = sent.Add(ttl - ttl/10)
			} else if !errors.Is(err, election.ErrUnavailable) {
				b.Fatalf("A's Renew: %v", err)
			}
		}
	case "claim":
		if err := link.Cut(ctx); err != nil {
			b.Fatal(err)
		}
		opened := time.Now()
		s, err := bP.OpenSession(ctx, ttl)
		if err != nil && !errors.Is(err, election.ErrUnavailable) {
			b.Fatal(err)
		}
		if err == nil {
			_, err := s.Claim(ctx, request(name, "b"))
			switch {
			case err == nil:
				deadline = opened.Add(ttl - ttl/10)
			case !errors.Is(err, election.ErrUnavailable):
				b.Fatalf("B's Claim: %v", err)
			}
		}
	}

	if err := primary.proc.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	killed := time.Now()
	if err := onR.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		b.Fatal(err)
	}
	bR, err := New(onR, Config{NoQuarantine: true})
	if err != nil {
		b.Fatal(err)
	}
	defer bR.Close()
	c, err := bR.OpenSession(ctx, ttl)
	if err != nil {
		b.Fatal(err)
	}
	for {
		_, err := c.Claim(ctx, request(name, "c"))
		if err == nil {
			break
		}
		var taken *election.TakenError
		if !errors.As(err, &taken) {
			b.Fatalf("C's Claim on R: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	electedAt := time.Now()
	return max(0, deadline.Sub(electedAt)), electedAt.Sub(killed)
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
