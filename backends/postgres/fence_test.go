package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/electionkit/election"
)

// fencedWrite is the pattern for SQL users: every write of leader-only work
// carries the term's fence, and the table refuses a fence older than the
// newest it has seen, so a deposed leader (paused, cut off, past its
// deadline) cannot overwrite its successor's work. It reports whether the
// write was accepted.
func fencedWrite(ctx context.Context, conn *pgx.Conn, fence uint64, value string) (bool, error) {
	tag, err := conn.Exec(ctx, `UPDATE report_state SET value = $2, fence = $1 WHERE id = 1 AND fence <= $1`,
		int64(fence), value)
	return tag.RowsAffected() == 1, err
}

// The fence of a term taken over from an expired holder is greater, so the
// old holder's late write is refused by the sink and the new one's kept.
func TestFencedWritesRefuseADeposedLeader(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	srv.Exec(t, `CREATE TABLE report_state (id int PRIMARY KEY, fence bigint NOT NULL, value text);
INSERT INTO report_state VALUES (1, 0, '')`)
	conn, err := pgx.Connect(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	b := newBackend(t, ctx, serverURL(srv.Addr, nil))
	oldTTL := time.Second // the claim must come before it ends, even on a loaded machine
	old := openSession(t, ctx, b, oldTTL)
	opened := time.Now() // old's session ends by opened + oldTTL
	oldTerm, err := old.Claim(ctx, request("report", "old"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := fencedWrite(ctx, conn, oldTerm.Fence, "from old"); !ok || err != nil {
		t.Fatalf("the first leader's write: %v, %v", ok, err)
	}
	time.Sleep(time.Until(opened.Add(oldTTL + 50*time.Millisecond))) // the old holder stalls past its TTL
	next := openSession(t, ctx, b, 5*time.Second)
	newTerm, err := next.Claim(ctx, request("report", "new"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := fencedWrite(ctx, conn, newTerm.Fence, "from new"); !ok || err != nil {
		t.Fatalf("the new leader's write: %v, %v", ok, err)
	}
	if ok, err := fencedWrite(ctx, conn, oldTerm.Fence, "late, from old"); ok || err != nil {
		t.Fatalf("the deposed leader's late write was accepted (%v, %v)", ok, err)
	}
	var value string
	if err := conn.QueryRow(ctx, `SELECT value FROM report_state WHERE id = 1`).Scan(&value); err != nil || value != "from new" {
		t.Fatalf("value %q, %v", value, err)
	}
}

// Backends opening at once on a fresh prefix all create or find the
// tables: creation is serialized by an advisory lock.
func TestConcurrentOpenCreatesOnce(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := Open(ctx, srv.URL, Config{Schema: "fresh", TablePrefix: "at_once_"})
			if err == nil {
				var s election.Session
				s, err = b.OpenSession(ctx, time.Second)
				if err == nil {
					err = s.Close(ctx)
				}
				_ = b.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
