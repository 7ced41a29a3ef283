package postgres

import (
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/teststore"
)

// Through a real transaction-mode PgBouncer (Debian's, 1.18: no prepared
// statements) with a server pool of 2: a listener that goes through it
// too is found by Open's own NOTIFY and refused, naming listen_url; with
// listen_url direct to Postgres, the expiry-boundary workload of
// TestExpiryBoundaryStress (twelve workers on three Backends) keeps one
// holder at a time with increasing fences, and a watch through the pooled
// Backend sees the terms change.
func TestPgBouncerTransactionMode(t *testing.T) {
	srv := startServer(t)
	bouncer := teststore.StartPgBouncer(t, srv, 2)
	ctx := testContext(t, 2*time.Minute)

	_, err := OpenURL(ctx, serverURL(bouncer.Addr, url.Values{"self_notify_timeout": {"1s"}}))
	if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "listen_url") {
		t.Fatalf("Open with the listener through pgbouncer: %v, want ErrInvalidArgument naming listen_url", err)
	}

	direct := serverURL(srv.Addr, nil).String()
	pooled := func() *Backend {
		return newBackend(t, ctx, serverURL(bouncer.Addr, url.Values{"listen_url": {direct}}))
	}
	watcher := pooled()
	var (
		mu     sync.Mutex
		fences []uint64
	)
	_, err = watcher.Notify(ctx, "boundary", func(ev election.WatchEvent) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Leader != nil && (len(fences) == 0 || fences[len(fences)-1] != ev.Leader.Fence) {
			fences = append(fences, ev.Leader.Fence)
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	st := runBoundary(t, ctx, []*Backend{pooled(), pooled(), pooled()}, 4*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if terms := st.terms; terms < 2 || len(fences) < 2 {
		t.Fatalf("%d terms, the watch saw %d: the workload did not run through pgbouncer", terms, len(fences))
	}
	for i := 1; i < len(fences); i++ {
		if fences[i] <= fences[i-1] {
			t.Errorf("the watch saw fence %d after %d", fences[i], fences[i-1])
		}
	}
	t.Logf("%d terms through pgbouncer, %d seen by the watch", st.terms, len(fences))
}
