package teststore

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/electionkit/election/internal/testserver"
)

// RedisOptions selects how [StartRedis] configures redis-server. The zero
// value is a plain-text server without persistence.
type RedisOptions struct {
	// Args are extra redis-server arguments: configuration directives such
	// as "--requirepass", "secret", "--replicaof", host, port,
	// "--cluster-enabled", "yes", or "--sentinel". They follow the defaults
	// (--port, --bind 127.0.0.1, --save "", --appendonly no, --loglevel
	// warning), so a single-valued directive given here overrides its
	// default. They must keep the server on loopback.
	Args []string
	// ConfigFile is the absolute path of a configuration file redis-server
	// reads before its arguments. Empty: none. Sentinel mode (Args
	// "--sentinel") needs one, because Sentinel rewrites it.
	ConfigFile string
	// TLS, when set, makes the server speak TLS only: its one port is the
	// TLS port and the plain-text port is off. Nil: plain text.
	TLS *TLS
}

// Redis is a redis-server started by [StartRedis]. The embedded
// [testserver.Process] pauses, resumes, stops and restarts it; without
// persistence a restarted server keeps its address but comes back empty. It
// is a conformance.Store.
type Redis struct {
	*testserver.Process
	// Addr is the server's address, "127.0.0.1:port".
	Addr string
}

// StartRedis starts a redis-server in a temporary directory, which is also
// where a cluster node keeps its nodes.conf, and returns once it answers a
// PING, with PONG or with an authentication error (credentials are the
// test's business, not readiness's). It fails the test if opts is invalid,
// redis-server is missing, or it does not answer within
// [testserver.DefaultReadyTimeout]; the process is killed when the test
// ends.
func StartRedis(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	if opts.ConfigFile != "" && !filepath.IsAbs(opts.ConfigFile) {
		t.Fatalf("teststore: RedisOptions.ConfigFile %q is not an absolute path", opts.ConfigFile)
	}
	tlsConfig := checkTLS(t, "RedisOptions", opts.TLS)
	port := strconv.Itoa(testserver.FreePort(t))
	addr := net.JoinHostPort("127.0.0.1", port)
	var args []string
	if opts.ConfigFile != "" {
		args = append(args, opts.ConfigFile)
	}
	if opts.TLS == nil {
		args = append(args, "--port", port)
	} else {
		clientAuth := "no"
		if opts.TLS.ClientCertAuth {
			clientAuth = "yes"
		}
		args = append(args, "--port", "0", "--tls-port", port,
			"--tls-cert-file", opts.TLS.CertFile, "--tls-key-file", opts.TLS.KeyFile,
			"--tls-ca-cert-file", opts.TLS.CAFile, "--tls-auth-clients", clientAuth)
	}
	args = append(args, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning")
	proc := testserver.Start(t, testserver.Config{
		Name:   "redis-server-" + port,
		Binary: testserver.Binary(t, "redis-server"),
		Args:   append(args, opts.Args...),
		Ready:  func(ctx context.Context) error { return redisPing(ctx, addr, tlsConfig) },
	})
	return &Redis{Process: proc, Addr: addr}
}

// redisPing succeeds when the server at addr answers a PING with PONG or
// with an authentication error. A nil tlsConfig means plain text.
func redisPing(ctx context.Context, addr string, tlsConfig *tls.Config) error {
	var conn net.Conn
	var err error
	if tlsConfig == nil {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		d := tls.Dialer{Config: tlsConfig}
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH") {
		return nil
	}
	return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
}
