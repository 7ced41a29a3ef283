package bench

import (
	"context"
	"testing"
	"time"
)

// TestScenarios runs both scenarios for every library on every store with
// a couple of samples, so that a plain `go test ./...` proves the harness
// measures what the benchmarks report. A failure means a library broke a
// scenario's invariants: the waiter did not become the holder, it held
// while the old holder still did (or, ours, while the old leader's context
// was live), a crashed holder was replaced before its last renewal could
// expire, or the observer never saw the store drop it. No timing is
// asserted: figures belong to the benchmarks.
func TestScenarios(t *testing.T) {
	for _, kind := range []string{"etcd", "redis", "consul", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			st := newStore(t, kind)
			for _, lib := range handoffLibraries(kind) {
				t.Run("handoff/"+lib.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					s, err := runHandoffs(ctx, st, lib, 2)
					if err != nil {
						t.Fatal(err)
					}
					if len(s.total) != 2 {
						t.Fatalf("%d samples, want 2", len(s.total))
					}
					if wantPhases := lib.name == "election"; wantPhases != (len(s.release) == 2) {
						t.Fatalf("%d phase samples for %s", len(s.release), lib.name)
					}
					for i := range s.release {
						if sum := s.release[i] + s.notice[i] + s.claim[i]; sum != s.total[i] {
							t.Errorf("handoff %d: phases %v + %v + %v = %v, want the total %v", i, s.release[i], s.notice[i], s.claim[i], sum, s.total[i])
						}
					}
					t.Logf("handoffs: %v; ours' phases: release %v, notice %v, claim %v", s.total, s.release, s.notice, s.claim)
				})
			}
			for _, lib := range crashLibraries(kind) {
				t.Run("crash/"+lib.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					s, err := runCrashes(ctx, st, lib, 1)
					if err != nil {
						t.Fatal(err)
					}
					if len(s.afterTTL) != 1 || len(s.fromCut) != 1 {
						t.Fatalf("%d and %d samples, want 1 each", len(s.afterTTL), len(s.fromCut))
					}
					if wantReact := kind == "etcd" || kind == "consul"; wantReact != (len(s.react) == 1) {
						t.Fatalf("%d observer samples on %s", len(s.react), kind)
					}
					t.Logf("takeover %v after the TTL, %v after the cut, observer %v", s.afterTTL[0], s.fromCut[0], s.react)
				})
			}
		})
	}
}
