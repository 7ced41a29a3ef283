package bench

import (
	"context"
	"flag"
	"testing"
	"time"
)

// Sample counts of the benchmarks. One benchmark operation is a whole
// series, so that `-benchtime 1x` (or the default benchtime: every series
// takes more than a second) gives one set of percentiles per -count.
var (
	handoffCount     = flag.Int("handoffs", 100, "graceful handoffs per library in each *Handoff benchmark")
	crashCount       = flag.Int("crashes", 15, "crash takeovers per library in BenchmarkEtcdCrash and BenchmarkRedisCrash")
	consulCrashCount = flag.Int("consul-crashes", 4,
		"crash takeovers per library in BenchmarkConsulCrash (each api.Lock one with the default lock-delay takes about 20s)")
)

// handoffLibraries are the libraries compared on a store in the graceful
// handoff scenario, each with its default settings.
func handoffLibraries(kind string) []library {
	switch kind {
	case "etcd":
		return []library{ourLibrary(kind, 0), concurrencyLibrary(0)}
	case "redis":
		return []library{ourLibrary(kind, 0), redsyncLibrary(false), redislockLibrary(false)}
	case "consul":
		return []library{ourLibrary(kind, 0), apiLockLibrary("api.Lock", false, 0)}
	case "postgres":
		return []library{ourLibrary(kind, 0), advisoryLibrary(), pglockLibrary(false)}
	}
	return nil
}

// crashLibraries are the libraries compared on a store in the crash
// scenario, each with a 1s TTL (etcd's minimum with the benchmark's Raft
// timing; Consul's session_ttl_min is lowered to it).
func crashLibraries(kind string) []library {
	switch kind {
	case "etcd":
		return []library{ourLibrary(kind, time.Second), concurrencyLibrary(1)}
	case "redis":
		return []library{ourLibrary(kind, redisCrashTTL), redsyncLibrary(true), redislockLibrary(true)}
	case "consul":
		return []library{
			ourLibrary(kind, consulMinTTL),
			apiLockLibrary("api.Lock", true, 0),
			apiLockLibrary("api.Lock-delay1ms", true, time.Millisecond),
		}
	case "postgres":
		return []library{ourLibrary(kind, postgresCrashTTL), advisoryLibrary(), pglockLibrary(true)}
	}
	return nil
}

// BenchmarkEtcdHandoff: graceful handoff on one etcd; sub-benchmarks
// election (ours) and concurrency.
func BenchmarkEtcdHandoff(b *testing.B) { benchHandoffs(b, "etcd") }

// BenchmarkRedisHandoff: graceful handoff on one redis-server;
// sub-benchmarks election, redsync and redislock.
func BenchmarkRedisHandoff(b *testing.B) { benchHandoffs(b, "redis") }

// BenchmarkConsulHandoff: graceful handoff on one Consul server;
// sub-benchmarks election and api.Lock.
func BenchmarkConsulHandoff(b *testing.B) { benchHandoffs(b, "consul") }

// BenchmarkEtcdCrash: crash takeover on one etcd; sub-benchmarks election
// and concurrency.
func BenchmarkEtcdCrash(b *testing.B) { benchCrashes(b, "etcd", *crashCount) }

// BenchmarkRedisCrash: crash takeover on one redis-server; sub-benchmarks
// election, redsync and redislock.
func BenchmarkRedisCrash(b *testing.B) { benchCrashes(b, "redis", *crashCount) }

// BenchmarkConsulCrash: crash takeover on one Consul server; sub-benchmarks
// election, api.Lock (default 15s lock-delay) and api.Lock-delay1ms.
func BenchmarkConsulCrash(b *testing.B) { benchCrashes(b, "consul", *consulCrashCount) }

// BenchmarkPostgresHandoff: graceful handoff on one postgres;
// sub-benchmarks election, advisory and pglock-design (postgrespeers_test.go).
func BenchmarkPostgresHandoff(b *testing.B) { benchHandoffs(b, "postgres") }

// BenchmarkPostgresCrash: crash takeover on one postgres; sub-benchmarks
// election, advisory and pglock-design.
func BenchmarkPostgresCrash(b *testing.B) { benchCrashes(b, "postgres", *postgresCrashCount) }

// benchHandoffs runs every handoff library of kind against one server.
// Metrics: p50-ms, p99-ms, max-ms of (waiter holds) − (release call
// began); for ours also the medians of its phases (handoffSamples):
// release-p50-ms, notice-p50-ms, claim-p50-ms.
func benchHandoffs(b *testing.B, kind string) {
	st := newStore(b, kind)
	for _, lib := range handoffLibraries(kind) {
		b.Run(lib.name, func(b *testing.B) {
			var all handoffSamples
			for range b.N {
				n := *handoffCount
				if lib.handoffs != nil {
					n = *lib.handoffs
				}
				s, err := runHandoffs(context.Background(), st, lib, n)
				if err != nil {
					b.Fatal(err)
				}
				all.total = append(all.total, s.total...)
				all.release = append(all.release, s.release...)
				all.notice = append(all.notice, s.notice...)
				all.claim = append(all.claim, s.claim...)
			}
			b.ReportMetric(0, "ns/op") // an operation is a whole series
			reportLatencies(b, "", all.total)
			reportMedian(b, "release-", all.release)
			reportMedian(b, "notice-", all.notice)
			reportMedian(b, "claim-", all.claim)
		})
	}
}

// benchCrashes runs every crash library of kind against one server.
// Metrics: p50-ms, p99-ms, max-ms of (B holds) − (A's last renewal send
// time + TTL); crash-* of (B holds) − (A's link cut); react-* of (B holds)
// − (an observer saw the store drop A), on etcd and Consul.
func benchCrashes(b *testing.B, kind string, n int) {
	st := newStore(b, kind)
	for _, lib := range crashLibraries(kind) {
		b.Run(lib.name, func(b *testing.B) {
			var all crashSamples
			for range b.N {
				s, err := runCrashes(context.Background(), st, lib, n)
				if err != nil {
					b.Fatal(err)
				}
				all.afterTTL = append(all.afterTTL, s.afterTTL...)
				all.fromCut = append(all.fromCut, s.fromCut...)
				all.react = append(all.react, s.react...)
			}
			b.ReportMetric(0, "ns/op")
			reportLatencies(b, "", all.afterTTL)
			reportLatencies(b, "crash-", all.fromCut)
			reportLatencies(b, "react-", all.react)
		})
	}
}
