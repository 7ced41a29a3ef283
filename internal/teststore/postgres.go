package teststore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/electionkit/election/internal/testserver"
)

// PostgresOptions selects how [StartPostgres] configures the server. The
// zero value is a server with trust authentication for the user postgres.
type PostgresOptions struct {
	// Password, when set, gives the role "election" this password and makes
	// the server ask it of that role (scram-sha-256) over TCP; the role
	// postgres keeps trust authentication for the harness's own checks.
	Password string
	// Args are extra "-c name=value" settings for the postmaster, after the
	// defaults. They must keep the server on loopback.
	Args []string
	// TLS, when set, turns ssl on with its server certificate and key
	// (copied into the server's directory, readable by postgres only);
	// plain-text connections stay allowed. ClientCertAuth is not supported.
	TLS *TLS
	// Env holds extra "KEY=value" entries for the server's environment,
	// which every server process inherits (libfaketime's, to step the
	// server's clock alone). They are set by env(1) after the change to
	// the user postgres, so setpriv does not see them.
	Env []string
}

// Postgres is a postgres server started by [StartPostgres], with its data
// in a temporary directory that survives Stop and Start. It is a
// conformance.Store whose Pause stops every server process, not only the
// postmaster: each Postgres backend process is its own process group
// (setsid), so a signal to the postmaster's group would leave the
// connections it serves answering.
type Postgres struct {
	*testserver.Process
	// Addr is the server's address, "127.0.0.1:port".
	Addr string
	// URL is a postgres:// URL of the server for the user postgres and the
	// database postgres, with sslmode=disable.
	URL string
}

// PostgresBinDir returns the directory of Debian's postgres binaries (the
// newest major version installed under /usr/lib/postgresql), or fails the
// test naming the package to install.
func PostgresBinDir(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) < majorOf(dirs[j]) })
	if len(dirs) == 0 {
		if p, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(p)
		}
		t.Fatalf("teststore: no postgres binary in /usr/lib/postgresql/*/bin or on $PATH; install it with: apt-get install -y postgresql")
	}
	return filepath.Dir(dirs[len(dirs)-1])
}

func majorOf(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

// asPostgresUser returns the command line that runs argv: unchanged, or,
// when the test runs as root (as CI does, and initdb, postgres and
// pgbouncer refuse root), through setpriv as the user postgres. setpriv
// sets the parent-death signal again after changing user (the kernel
// clears the one testserver sets when credentials change), so a server
// does not outlive a test binary that dies.
func asPostgresUser(t testing.TB, argv ...string) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		return argv
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("teststore: running as root needs setpriv (util-linux) to run %s as the user postgres: %v", argv[0], err)
	}
	if _, err := user.Lookup("postgres"); err != nil {
		t.Fatalf("teststore: running as root needs the user postgres (apt-get install -y postgresql creates it): %v", err)
	}
	return append([]string{setpriv, "--reuid=postgres", "--regid=postgres", "--init-groups", "--pdeathsig=KILL", "--"}, argv...)
}

// serverDir makes a temporary directory the user postgres may use (when
// the test runs as root), removed when the test ends.
func serverDir(t testing.TB, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatalf("teststore: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("teststore: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("teststore: %v", err)
		}
	}
	return dir
}

// StartPostgres runs initdb in a temporary directory and starts postgres
// on a random loopback port (TCP only, no Unix socket), as the user
// postgres when the test runs as root. fsync is off: a SIGKILL of the
// server (Stop) loses nothing the kernel has, which is the crash the
// conformance suite injects. It returns once a connection answers SELECT 1;
// the server is killed when the test ends.
func StartPostgres(t testing.TB, opts PostgresOptions) *Postgres {
	t.Helper()
	bin := PostgresBinDir(t)
	dir := serverDir(t, "election-pg-")
	data := filepath.Join(dir, "data")
	initdb := asPostgresUser(t, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-sync", "--no-instructions")
	if out, err := exec.Command(initdb[0], initdb[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("teststore: initdb: %v\n%s", err, out)
	}
	if opts.Password != "" {
		hba := "host all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
		if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o644); err != nil {
			t.Fatalf("teststore: %v", err)
		}
	}
	port := strconv.Itoa(testserver.FreePort(t))
	addr := net.JoinHostPort("127.0.0.1", port)
	args := postgresArgs(bin, data, port)
	if opts.TLS != nil {
		if opts.TLS.ClientCertAuth {
			t.Fatalf("teststore: PostgresOptions.TLS.ClientCertAuth is not supported")
		}
		checkTLS(t, "PostgresOptions", opts.TLS)
		cert, key := copyForPostgres(t, opts.TLS.CertFile, dir, "server.crt"), copyForPostgres(t, opts.TLS.KeyFile, dir, "server.key")
		args = append(args, "-c", "ssl=on", "-c", "ssl_cert_file="+cert, "-c", "ssl_key_file="+key)
	}
	for _, a := range opts.Args {
		args = append(args, "-c", a)
	}
	if len(opts.Env) > 0 {
		// Set by env(1) after setpriv, so that only postgres has them.
		args = append(append([]string{"env"}, opts.Env...), args...)
		if p, err := exec.LookPath("env"); err == nil {
			args[0] = p
		}
	}
	argv := asPostgresUser(t, args...)
	url := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", addr)
	proc := testserver.Start(t, testserver.Config{
		Name:   "postgres-" + port,
		Binary: argv[0],
		Args:   argv[1:],
		Dir:    dir,
		Ready:  func(ctx context.Context) error { return pgPing(ctx, url) },
	})
	pg := &Postgres{Process: proc, Addr: addr, URL: url}
	if opts.Password != "" {
		pg.Exec(t, fmt.Sprintf("CREATE ROLE election LOGIN PASSWORD '%s'; GRANT ALL ON DATABASE postgres TO election; GRANT ALL ON SCHEMA public TO election",
			strings.ReplaceAll(opts.Password, "'", "''")))
	}
	return pg
}

// postgresArgs is the command line of a test server on data and port:
// loopback TCP only, no fsync (a SIGKILL loses nothing the kernel has).
func postgresArgs(bin, data, port string) []string {
	return []string{filepath.Join(bin, "postgres"), "-D", data, "-p", port,
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=500",
		"-c", "shared_buffers=32MB", "-c", "log_min_messages=warning", "-c", "deadlock_timeout=100ms"}
}

// copyForPostgres copies src into dir as name, mode 0600, owned by the
// user postgres when the test runs as root (postgres refuses a key others
// may read).
func copyForPostgres(t testing.TB, src, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("teststore: %v", err)
	}
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatalf("teststore: %v", err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("teststore: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dst, uid, gid); err != nil {
			t.Fatalf("teststore: %v", err)
		}
	}
	return dst
}

// Exec runs sql (one or more statements, simple protocol) as the user
// postgres and fails the test on error.
func (p *Postgres) Exec(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgconn.Connect(ctx, p.URL)
	if err != nil {
		t.Fatalf("teststore: connect to postgres: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		t.Fatalf("teststore: %s: %v", sql, err)
	}
}

func pgPing(ctx context.Context, url string) error {
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "SELECT 1").ReadAll()
	return err
}

// Pause stops the postmaster (SIGSTOP), then every process it forked
// (each backend is its own process group), and returns once all of them
// have stopped.
func (p *Postgres) Pause(ctx context.Context) error {
	if err := p.Process.Pause(ctx); err != nil {
		return err
	}
	// The postmaster is stopped: it forks nothing new meanwhile.
	for _, pid := range childrenOf(p.PID()) {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	for {
		running := 0
		for _, pid := range childrenOf(p.PID()) {
			if st, err := procState(pid); err == nil && st != 'T' && st != 't' && st != 'Z' {
				running++
			}
		}
		if running == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("teststore: pause postgres: %d processes still running: %w", running, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// Resume continues every process of the server.
func (p *Postgres) Resume(ctx context.Context) error {
	for _, pid := range childrenOf(p.PID()) {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	return p.Process.Resume(ctx)
}

// Stop kills every process of the server (SIGKILL: a crash, recovered from
// the WAL at the next Start) and waits for them to go.
func (p *Postgres) Stop(ctx context.Context) error {
	children := childrenOf(p.PID())
	for _, pid := range children {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	err := p.Process.Stop(ctx)
	for _, pid := range children {
		for {
			st, serr := procState(pid)
			if serr != nil || st == 'Z' || st == 'X' {
				break
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			select {
			case <-ctx.Done():
				return errors.Join(err, fmt.Errorf("teststore: stop postgres: process %d still alive: %w", pid, ctx.Err()))
			case <-time.After(time.Millisecond):
			}
		}
	}
	return err
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) []int {
	if pid <= 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, err := procPPID(n); err == nil && ppid == pid {
			out = append(out, n)
		}
	}
	return out
}

// procStat returns the fields of /proc/pid/stat after the command name.
func procStat(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return nil, fmt.Errorf("unexpected /proc stat format")
	}
	return strings.Fields(s[i+2:]), nil
}

func procState(pid int) (byte, error) {
	f, err := procStat(pid)
	if err != nil || len(f) < 1 {
		return 0, errors.Join(err, errors.New("no state"))
	}
	return f[0][0], nil
}

func procPPID(pid int) (int, error) {
	f, err := procStat(pid)
	if err != nil || len(f) < 2 {
		return 0, errors.Join(err, errors.New("no ppid"))
	}
	return strconv.Atoi(f[1])
}
