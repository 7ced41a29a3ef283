//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRestartOnFailure: with --restart on-failure, a command that fails is
// run again, after a backoff, until it succeeds; elect then exits 0. Each
// run has its own term, so the fences increase.
func TestRestartOnFailure(t *testing.T) {
	s := startStore(t, "redis")
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	script := fmt.Sprintf(`echo "$ELECTION_FENCE" >> %q; [ "$(wc -l < %q)" -ge 3 ]`, runs, runs)
	code, out := runElect(t, s.direct(), "run", "--ttl", ttl, "--restart", "on-failure", "--backoff", "100ms",
		"--backoff-max", "30s", "again", "--", "sh", "-c", script)
	if code != 0 {
		t.Fatalf("elect run --restart on-failure: exit %d, want 0 after the third run:\n%s", code, out)
	}
	b, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	fences := strings.Fields(string(b))
	if len(fences) != 3 {
		t.Fatalf("the command ran %d times (fences %v), want 3", len(fences), fences)
	}
	for _, want := range []string{"campaigning again in 100ms", "campaigning again in 200ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("elect did not log %q (a doubling backoff):\n%s", want, out)
		}
	}
	var prev uint64
	for _, f := range fences {
		var n uint64
		fmt.Sscan(f, &n)
		if n <= prev {
			t.Fatalf("fences %v do not increase", fences)
		}
		prev = n
	}
}
