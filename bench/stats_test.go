package bench

import (
	"math"
	"slices"
	"testing"
	"time"
)

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 1) of
// samples: the smallest sample with at least p of all samples at or below
// it. With fewer than 100 samples, p99 is the maximum.
func percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	rank := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// reportLatencies reports the p50, p99 and max of samples in milliseconds,
// under units prefix+"p50-ms", prefix+"p99-ms" and prefix+"max-ms".
func reportLatencies(b *testing.B, prefix string, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	b.ReportMetric(ms(percentile(samples, 0.5)), prefix+"p50-ms")
	b.ReportMetric(ms(percentile(samples, 0.99)), prefix+"p99-ms")
	b.ReportMetric(ms(percentile(samples, 1)), prefix+"max-ms")
}

// reportMedian reports the p50 of samples in milliseconds under unit
// prefix+"p50-ms".
func reportMedian(b *testing.B, prefix string, samples []time.Duration) {
	if len(samples) > 0 {
		b.ReportMetric(ms(percentile(samples, 0.5)), prefix+"p50-ms")
	}
}

func TestPercentile(t *testing.T) {
	var samples []time.Duration
	for i := 10; i >= 1; i-- {
		samples = append(samples, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 10 * time.Millisecond}, {1, 10 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := percentile(samples, c.p); got != c.want {
			t.Errorf("percentile(1..10ms, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
	if samples[0] != 10*time.Millisecond {
		t.Errorf("percentile sorted its argument")
	}
}
