package postgres

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/electionkit/election"
)

// The README's "What can go wrong": what each operator action or server
// fault does to a holder and to the next claim, on a real server.

// sessionID is the id of a session this package opened.
func sessionID(t *testing.T, s election.Session) string {
	t.Helper()
	ps, ok := s.(*session)
	if !ok {
		t.Fatalf("session of type %T", s)
	}
	return ps.id
}

// A claim whose reply was lost (a timeout after the commit) and that is
// sent again with the same session and token returns the same term: the
// stored fence, not a second one, and not "taken" by itself.
func TestClaimReplay(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, nil))
	s := openSession(t, ctx, b, 5*time.Second)
	first, err := s.Claim(ctx, request("replayed", "a"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Claim(ctx, request("replayed", "a"))
	if err != nil || again.Fence != first.Fence {
		t.Fatalf("the replayed claim = %+v, %v; want the same term at fence %d", again, err, first.Fence)
	}
	if err := s.Renew(ctx, []election.Claim{first}); err != nil {
		t.Fatalf("renew after the replay: %v", err)
	}
}

// An operator deletes the holder's session row: nothing is announced; a
// claim takes the election at once (its session is gone) with a higher
// fence, and the holder learns at its next renewal (ErrSessionExpired).
func TestOperatorDeletesSession(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, nil))
	holder := openSession(t, ctx, b, 5*time.Second)
	held, err := holder.Claim(ctx, request("deleted", "a"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Exec(t, `DELETE FROM public.election_sessions WHERE id = '`+sessionID(t, holder)+`'`)
	next := openSession(t, ctx, b, 5*time.Second)
	c, err := next.Claim(ctx, request("deleted", "b"))
	if err != nil || c.Fence <= held.Fence {
		t.Fatalf("claim after the holder's session row was deleted = %+v, %v; want a fence above %d", c, err, held.Fence)
	}
	if err := holder.Renew(ctx, []election.Claim{held}); !errors.Is(err, election.ErrSessionExpired) {
		t.Fatalf("the holder's renewal = %v, want ErrSessionExpired", err)
	}
}

// An operator truncates the claims table: nothing is announced; a claim
// takes the election at once with a fence above the old one (the sequence
// is not the table's), and the holder learns at its next renewal
// (NotOwnerError for the claim).
func TestOperatorTruncatesClaims(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, nil))
	holder := openSession(t, ctx, b, 5*time.Second)
	held, err := holder.Claim(ctx, request("truncated", "a"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Exec(t, `TRUNCATE public.election_claims RESTART IDENTITY`)
	next := openSession(t, ctx, b, 5*time.Second)
	c, err := next.Claim(ctx, request("truncated", "b"))
	if err != nil || c.Fence <= held.Fence {
		t.Fatalf("claim after TRUNCATE = %+v, %v; want a fence above %d", c, err, held.Fence)
	}
	var notOwner *election.NotOwnerError
	if err := holder.Renew(ctx, []election.Claim{held}); !errors.As(err, &notOwner) || len(notOwner.Claims) != 1 {
		t.Fatalf("the holder's renewal = %v, want a NotOwnerError for its claim", err)
	}
}

// An operator drops the tables: every statement fails with
// ErrInvalidArgument naming the missing tables (no retry can help), so
// the holder's renewals fail (it steps down at its deadline) and nobody
// can claim; Open with no_create refuses, Open without it creates them
// again. Fences restart with the sequence only if it was dropped too.
func TestOperatorDropsTables(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, nil))
	holder := openSession(t, ctx, b, 5*time.Second)
	held, err := holder.Claim(ctx, request("dropped", "a"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Exec(t, `DROP TABLE public.election_claims, public.election_sessions`)
	missing := func(what string, err error) {
		t.Helper()
		var pgErr *pgconn.PgError
		if !errors.Is(err, election.ErrInvalidArgument) || !errors.As(err, &pgErr) || pgErr.Code != "42P01" || !strings.Contains(err.Error(), "tables are missing") {
			t.Errorf("%s after DROP TABLE = %v; want ErrInvalidArgument (42P01) saying the tables are missing", what, err)
		}
	}
	missing("Renew", holder.Renew(ctx, []election.Claim{held}))
	_, err = holder.Claim(ctx, request("dropped", "b"))
	missing("Claim", err)
	_, err = b.OpenSession(ctx, 5*time.Second)
	missing("OpenSession", err)
	if _, err := OpenURL(ctx, serverURL(srv.Addr, url.Values{"no_create": {"true"}})); !errors.Is(err, election.ErrInvalidArgument) {
		t.Errorf("Open with no_create after DROP TABLE = %v, want ErrInvalidArgument", err)
	}
	again := newBackend(t, ctx, serverURL(srv.Addr, nil)) // creates them again
	s := openSession(t, ctx, again, 5*time.Second)
	if c, err := s.Claim(ctx, request("dropped", "c")); err != nil || c.Fence <= held.Fence {
		t.Fatalf("claim after the tables were created again = %+v, %v; want a fence above %d (the sequence stayed)", c, err, held.Fence)
	}
}

// A statement that waits longer than the server's statement_timeout (here
// for a row an operator's open transaction has locked) is cancelled by the
// server (57014): the claim or renewal is rolled back and fails with
// ErrUnavailable (the core retries). The holder keeps its claim while
// the lock lasts only if a renewal gets through before its deadline;
// nobody can take the election meanwhile.
func TestStatementTimeoutOnLockedRows(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, url.Values{"statement_timeout": {"1000"}}))
	holder := openSession(t, ctx, b, 10*time.Second)
	held, err := holder.Claim(ctx, request("locked", "a"))
	if err != nil {
		t.Fatal(err)
	}
	op, err := pgx.Connect(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close(context.Background())
	tx, err := op.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `SELECT 1 FROM public.election_claims WHERE name = 'locked' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM public.election_sessions WHERE id = $1 FOR UPDATE`, sessionID(t, holder)); err != nil {
		t.Fatal(err)
	}
	cancelled := func(what string, err error) {
		t.Helper()
		var pgErr *pgconn.PgError
		if !errors.Is(err, election.ErrUnavailable) || !errors.As(err, &pgErr) || pgErr.Code != "57014" {
			t.Errorf("%s on a locked row = %v; want ErrUnavailable wrapping 57014 (statement timeout)", what, err)
		}
	}
	next := openSession(t, ctx, b, 10*time.Second)
	_, err = next.Claim(ctx, request("locked", "b"))
	cancelled("Claim", err)
	cancelled("Renew", holder.Renew(ctx, []election.Claim{held}))
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := holder.Renew(ctx, []election.Claim{held}); err != nil {
		t.Fatalf("renewal once the lock is gone: %v", err)
	}
	if l, err := b.Leader(ctx, "locked"); err != nil || l.Fence != held.Fence {
		t.Fatalf("Leader once the lock is gone = %+v, %v; want the holder at fence %d (the cancelled claim left nothing)", l, err, held.Fence)
	}
}

// The server process serving the holder's renewal connection is paused
// (SIGSTOP of that one process, as a stuck backend or a lost connection
// would look): the renewal times out (ErrUnavailable), the Backend drops
// that connection, and the next renewal, on a new one, succeeds within the
// TTL: the holder keeps its term.
func TestRenewalProcessPaused(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, url.Values{"application_name": {"paused_renewer"}}))
	s := openSession(t, ctx, b, 10*time.Second)
	held, err := s.Claim(ctx, request("paused", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Renew(ctx, []election.Claim{held}); err != nil {
		t.Fatal(err)
	}
	// The renewal connection is the one whose last statement renewed.
	var pid int
	err = b.pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
WHERE application_name = 'paused_renewer' AND pid <> pg_backend_pid() AND query LIKE '%expires_at = clock_timestamp()%'`).Scan(&pid)
	if err != nil {
		t.Fatalf("finding the renewal connection's server process: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer resume()
	stuck, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err = s.Renew(stuck, []election.Claim{held})
	cancel()
	if !errors.Is(err, election.ErrUnavailable) {
		t.Fatalf("renewal through the paused process = %v, want ErrUnavailable", err)
	}
	if err := s.Renew(ctx, []election.Claim{held}); err != nil {
		t.Fatalf("the next renewal (a new connection) while that process is still paused: %v", err)
	}
	resume()
	if l, err := b.Leader(ctx, "paused"); err != nil || l.Fence != held.Fence {
		t.Fatalf("Leader = %+v, %v; want the holder at fence %d", l, err, held.Fence)
	}
}
