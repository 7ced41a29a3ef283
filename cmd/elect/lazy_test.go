//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/electionkit/election/internal/teststore"
)

// TestLazyStoreDown: with the store down, elect run exits 69 naming the
// address, unless the URL says lazy=true: then it campaigns until the store
// starts and runs the command. go-redis's own lines about the failed
// dials do not reach elect's stderr.
func TestLazyStoreDown(t *testing.T) {
	r := teststore.StartRedis(t, teststore.RedisOptions{})
	ctx := untilCtx(t)
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	url := "redis://" + r.Addr + "?no_quarantine=true&dial_timeout=500ms"
	code, out := runElect(t, url, "run", "--ttl", ttl, "lazy", "--", "true")
	if code != exitUnavailable || !strings.Contains(out, r.Addr) || !strings.Contains(out, "dial_timeout 500ms") {
		t.Fatalf("elect run with the store down: exit %d, want %d naming %s and the dial timeout:\n%s", code, exitUnavailable, r.Addr, out)
	}

	ready := filepath.Join(t.TempDir(), "ready")
	a := startElect(t, "A", url+"&lazy=true", "run", "--ttl", ttl, "--id", "A", "lazy", "--", "sh", "-c",
		fmt.Sprintf(`trap 'exit 0' TERM; echo $ELECTION_FENCE > %q; while :; do sleep 0.05; done`, ready))
	eventually(t, "elect campaigning with the store down", func() bool { return strings.Contains(a.stderr.String(), "campaigning in") })
	if _, err := os.Stat(ready); err == nil {
		t.Fatal("the command started while the store was down")
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the command started once the store is up", func() bool { b, _ := os.ReadFile(ready); return len(b) > 0 })
	signalProc(t, a, syscall.SIGTERM)
	if code := a.wait(); code != 0 {
		t.Fatalf("elect exited %d, want the command's 0:\n%s", code, a.stderr.String())
	}
	for _, p := range []string{out, a.stderr.String()} {
		if strings.Contains(p, "connection pool") || strings.Contains(p, "pool.go") {
			t.Errorf("go-redis's own log lines reached elect's stderr:\n%s", p)
		}
	}
}
