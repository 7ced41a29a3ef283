// Package etcdtest runs a single-member etcd server inside the current
// process, for tests and demos, the way net/http/httptest runs an HTTP
// server: on free loopback ports, in a temporary data directory, silent.
//
// The server is tuned to start fast (10ms heartbeat, 100ms election
// timeout), which also lowers etcd's minimum lease TTL to 1s, and it does not
// fsync: data survives [Server.Close] and a later [Start] on the same
// directory, not a machine crash. It is not for production.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Options configures [Start]. The zero value is a fresh, silent server.
type Options struct {
	// Dir is the data directory. Empty: a new temporary directory that
	// [Server.Close] removes. A Dir given here is kept, so a second server
	// started on it sees the first one's data (revisions included).
	Dir string
	// Logger receives the server's logs. Nil: none.
	Logger *zap.Logger
}

// Server is a running embedded etcd member.
type Server struct {
	etcd      *embed.Etcd
	dir       string
	removeDir bool
	endpoint  string
}

// startAttempts bounds retries when a probed free port is taken by someone
// else before the server binds it.
const startAttempts = 5

// Start starts a server and waits, until ctx ends, for it to serve clients.
// It fails if the server cannot bind loopback ports or does not become
// ready in time; nothing is left running or on disk (except a Dir given in
// opts) after an error.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("etcdtest: %w", err)
	}
	s := &Server{dir: opts.Dir}
	if s.dir == "" {
		dir, err := os.MkdirTemp("", "etcdtest-")
		if err != nil {
			return nil, fmt.Errorf("etcdtest: %w", err)
		}
		s.dir, s.removeDir = dir, true
	}
	var err error
	for range startAttempts {
		if err = s.start(ctx, opts); err == nil || !isAddrInUse(err) {
			break
		}
	}
	if err != nil {
		s.cleanupDir()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context, opts Options) error {
	clientPort, peerPort, err := freePorts()
	if err != nil {
		return fmt.Errorf("etcdtest: %w", err)
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))}

	cfg := embed.NewConfig()
	cfg.Name = "etcdtest"
	cfg.Dir = s.dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{clientURL}, []url.URL{clientURL}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peerURL}, []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.UnsafeNoFsync = true
	cfg.Logger = "zap"
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger)
	// On an existing Dir the member keeps its stored identity; new ports
	// do not matter to a single member, which never dials a peer.

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("etcdtest: start: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcdtest: start: %w", err)
	case <-ctx.Done():
		e.Close()
		return fmt.Errorf("etcdtest: not ready: %w", ctx.Err())
	}
	s.etcd, s.endpoint = e, clientURL.String()
	return nil
}

// New starts a server for the test t and closes it when t ends. It fails
// the test if the server does not start within a minute.
func New(t testing.TB) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// Endpoints returns the client URLs, e.g. ["http://127.0.0.1:40123"].
func (s *Server) Endpoints() []string { return []string{s.endpoint} }

// Dir returns the data directory.
func (s *Server) Dir() string { return s.dir }

// Close stops the server, waiting for its goroutines, and removes the data
// directory if Start created it. It is idempotent.
func (s *Server) Close() error {
	if s.etcd != nil {
		s.etcd.Close()
		s.etcd = nil
	}
	return s.cleanupDir()
}

func (s *Server) cleanupDir() error {
	if !s.removeDir {
		return nil
	}
	s.removeDir = false
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("etcdtest: %w", err)
	}
	return nil
}

// freePorts asks the kernel for two free loopback ports. They are free when
// returned, not reserved: Start retries if one is taken before etcd binds.
func freePorts() (int, int, error) {
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}

func isAddrInUse(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "listen"
}
