package postgres

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/teststore"
)

// TestAsyncReplicaFailover: the README's "fences can repeat after a
// failover to an asynchronous replica", on a real primary and streaming
// replica. A claim committed on the primary but not yet shipped is lost
// with the primary; its holder was told it leads, and the promoted replica
// elects another at once (two leaders for up to the old holder's deadline).
// Postgres WAL-logs a sequence 32 values ahead, so a lost claim repeats a
// fence only when it drew the first value of a batch whose WAL record was
// lost too: here the warm-up claims use up a batch first, and the new
// primary's claim gets the lost claim's fence exactly.
func TestAsyncReplicaFailover(t *testing.T) {
	primary := startServer(t)
	ctx := testContext(t, 2*time.Minute)
	open := func(srv *teststore.Postgres) *Backend {
		b, err := OpenURL(ctx, serverURL(srv.Addr, nil))
		if err != nil {
			t.Fatalf("OpenURL: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() }) // the primary's fails: it is gone
		return b
	}
	bp := open(primary)
	kept := openSession(t, ctx, bp, time.Minute)
	keptClaim, err := kept.Claim(ctx, request("kept", "a"))
	if err != nil {
		t.Fatal(err)
	}
	// Use up the sequence's WAL-logged batch: the next value will be logged
	// anew, by the claim that is about to be lost.
	warm := openSession(t, ctx, bp, time.Minute)
	for i := 0; ; i++ {
		var logCnt int64
		if err := bp.pool.QueryRow(ctx, `SELECT log_cnt FROM public.election_fences`).Scan(&logCnt); err != nil {
			t.Fatal(err)
		}
		if logCnt == 0 {
			break
		}
		if i > 100 {
			t.Fatalf("the sequence's log_cnt is still %d after %d claims", logCnt, i)
		}
		c, err := warm.Claim(ctx, request("warm", "w"))
		if err != nil {
			t.Fatal(err)
		}
		if err := warm.Release(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	replica := teststore.StartPostgresReplica(t, primary)
	if err := teststore.CaughtUp(ctx, primary, replica); err != nil {
		t.Fatal(err)
	}
	// Replication stalls (the walsender is stopped), the primary commits
	// alone (asynchronous), then crashes.
	var walsender int
	if err := bp.pool.QueryRow(ctx, `SELECT pid FROM pg_stat_replication`).Scan(&walsender); err != nil {
		t.Fatalf("no walsender: %v", err)
	}
	if err := syscall.Kill(walsender, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	lostSession := openSession(t, ctx, bp, time.Minute)
	lost, err := lostSession.Claim(ctx, request("lost", "b"))
	if err != nil {
		t.Fatalf("claim on the primary: %v", err)
	}
	if err := primary.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := replica.Promote(ctx); err != nil {
		t.Fatal(err)
	}

	br := open(replica)
	if l, err := br.Leader(ctx, "kept"); err != nil || l.Fence != keptClaim.Fence {
		t.Fatalf("the replicated claim on the new primary = %+v, %v; want fence %d", l, err, keptClaim.Fence)
	}
	if l, err := br.Leader(ctx, "lost"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("the unreplicated claim on the new primary = %+v, %v; want ErrNoLeader (lost)", l, err)
	}
	next := openSession(t, ctx, br, time.Minute)
	again, err := next.Claim(ctx, request("lost", "c"))
	if err != nil {
		t.Fatalf("claim on the new primary: %v", err)
	}
	if again.Fence != lost.Fence {
		t.Fatalf("the new primary's term has fence %d, the lost one had %d: want the same fence (the repeat the README states)", again.Fence, lost.Fence)
	}
	t.Logf("lost term (told it leads) and the new primary's term both carry fence %d", lost.Fence)
}
