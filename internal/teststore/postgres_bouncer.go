package teststore

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/electionkit/election/internal/testserver"
)

// PgBouncer is a pgbouncer in transaction pooling mode in front of a
// [Postgres] started by [StartPgBouncer].
type PgBouncer struct {
	*testserver.Process
	// Addr is the pooler's address, "127.0.0.1:port".
	Addr string
	// URL is a postgres:// URL of the database postgres through the pooler,
	// for the user postgres, with sslmode=disable.
	URL string
}

// StartPgBouncer starts Debian's pgbouncer (pool_mode = transaction, as the
// user postgres when the test runs as root: pgbouncer refuses root) on a
// random loopback port, with a server pool of poolSize connections to pg.
// It returns once a query through it is answered; it is killed when the
// test ends.
func StartPgBouncer(t testing.TB, pg *Postgres, poolSize int) *PgBouncer {
	t.Helper()
	if poolSize < 1 {
		t.Fatalf("teststore: StartPgBouncer: poolSize %d is below 1", poolSize)
	}
	binary, err := exec.LookPath("pgbouncer")
	if err != nil {
		binary = "/usr/sbin/pgbouncer"
		if _, statErr := os.Stat(binary); statErr != nil {
			t.Fatalf("teststore: pgbouncer not found on $PATH or in /usr/sbin; install it with: apt-get install -y pgbouncer")
		}
	}
	dir := serverDir(t, "election-pgbouncer-")
	host, pgPort, _ := net.SplitHostPort(pg.Addr)
	port := strconv.Itoa(testserver.FreePort(t))
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %s
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 1000
server_reset_query =
ignore_startup_parameters = extra_float_digits,application_name
logfile = %s
pidfile =
`, host, pgPort, port, filepath.Join(dir, "users.txt"), poolSize, filepath.Join(dir, "pgbouncer.log"))
	for name, content := range map[string]string{"pgbouncer.ini": ini, "users.txt": `"postgres" ""` + "\n"} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatalf("teststore: %v", err)
		}
	}
	argv := asPostgresUser(t, binary, filepath.Join(dir, "pgbouncer.ini"))
	addr := net.JoinHostPort("127.0.0.1", port)
	url := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", addr)
	proc := testserver.Start(t, testserver.Config{
		Name:   "pgbouncer-" + port,
		Binary: argv[0],
		Args:   argv[1:],
		Dir:    dir,
		Ready:  func(ctx context.Context) error { return pgPing(ctx, url) },
	})
	return &PgBouncer{Process: proc, Addr: addr, URL: url}
}
