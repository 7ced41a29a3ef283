package postgres

import (
	"errors"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/history"
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
	err = watcher.Notify(ctx, "boundary", func(ev election.WatchEvent) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Leader != nil && (len(fences) == 0 || fences[len(fences)-1] != ev.Leader.Fence) {
			fences = append(fences, ev.Leader.Fence)
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	var clockMu sync.Mutex
	var stamp time.Time
	rec := history.New(func() time.Time { return stamp })
	at := func(when time.Time, fn func()) {
		clockMu.Lock()
		defer clockMu.Unlock()
		stamp = when
		fn()
	}
	var counts [4]struct{ n atomic.Int64 }
	stop := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for range 3 {
		b := pooled()
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := "p" + newSessionID()[:6]
				errs <- boundaryWorker(ctx, b, id, 150*time.Millisecond, stop, at, rec, &counts[0].n, &counts[1].n, &counts[2].n, &counts[3].n)
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for _, v := range rec.Check(history.Bounds{End: time.Now()}) {
		t.Error(v)
	}
	mu.Lock()
	defer mu.Unlock()
	if terms := len(rec.Runs()); terms < 2 || len(fences) < 2 {
		t.Fatalf("%d terms, the watch saw %d: the workload did not run through pgbouncer", terms, len(fences))
	}
	for i := 1; i < len(fences); i++ {
		if fences[i] <= fences[i-1] {
			t.Errorf("the watch saw fence %d after %d", fences[i], fences[i-1])
		}
	}
	t.Logf("%d terms through pgbouncer, %d seen by the watch", len(rec.Runs()), len(fences))
}
