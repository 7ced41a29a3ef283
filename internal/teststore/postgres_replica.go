package teststore

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/electionkit/election/internal/testserver"
)

// StartPostgresReplica makes an asynchronous streaming replica of primary
// (pg_basebackup -R of its data, as the user postgres when the test runs
// as root) and starts it as a hot standby on a new loopback port. It
// returns once the replica answers SELECT 1; it is killed when the test
// ends. The primary's default pg_hba (initdb -A trust) allows the
// replication connection; a primary started with a Password does not.
func StartPostgresReplica(t testing.TB, primary *Postgres) *Postgres {
	t.Helper()
	bin := PostgresBinDir(t)
	dir := serverDir(t, "election-pg-replica-")
	data := filepath.Join(dir, "data")
	host, port, err := net.SplitHostPort(primary.Addr)
	if err != nil {
		t.Fatalf("teststore: %v", err)
	}
	backup := asPostgresUser(t, filepath.Join(bin, "pg_basebackup"), "-h", host, "-p", port, "-U", "postgres",
		"-D", data, "-R", "-X", "stream", "--no-sync", "-c", "fast")
	if out, err := exec.Command(backup[0], backup[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("teststore: pg_basebackup: %v\n%s", err, out)
	}
	replicaPort := strconv.Itoa(testserver.FreePort(t))
	addr := net.JoinHostPort("127.0.0.1", replicaPort)
	argv := asPostgresUser(t, append(postgresArgs(bin, data, replicaPort), "-c", "hot_standby=on")...)
	url := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", addr)
	proc := testserver.Start(t, testserver.Config{
		Name:   "postgres-replica-" + replicaPort,
		Binary: argv[0],
		Args:   argv[1:],
		Dir:    dir,
		Ready:  func(ctx context.Context) error { return pgPing(ctx, url) },
	})
	return &Postgres{Process: proc, Addr: addr, URL: url}
}

// CaughtUp waits until the replica has replayed everything the primary had
// written when it was called.
func CaughtUp(ctx context.Context, primary, replica *Postgres) error {
	target, err := queryText(ctx, primary.URL, `SELECT pg_current_wal_lsn()::text`)
	if err != nil {
		return err
	}
	for {
		done, err := queryText(ctx, replica.URL, fmt.Sprintf(`SELECT (pg_last_wal_replay_lsn() >= '%s'::pg_lsn)::text`, target))
		if err == nil && done == "true" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("teststore: replica not caught up with %s: %v: %w", target, err, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Promote makes the replica a primary (pg_promote, waiting for the end of
// recovery).
func (p *Postgres) Promote(ctx context.Context) error {
	ok, err := queryText(ctx, p.URL, `SELECT pg_promote(true, 60)::text`)
	if err != nil {
		return fmt.Errorf("teststore: promote: %w", err)
	}
	if ok != "true" {
		return fmt.Errorf("teststore: promote: pg_promote returned %s", ok)
	}
	return nil
}

// queryText runs a one-value query at url and returns the value as text.
func queryText(ctx context.Context, url, sql string) (string, error) {
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	res, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return "", err
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return "", fmt.Errorf("teststore: %s: not one value", sql)
	}
	return string(res[0].Rows[0][0]), nil
}
