package etcd_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election/internal/testserver"
)

// Raft timing of the test servers. A 500ms election timeout makes etcd's
// minimum lease TTL ceil(1.5 × 0.5s) = 1s, so the suite can use 1s TTLs;
// it is still ten heartbeats, enough for two loaded cores.
const (
	testHeartbeat       = "50"
	testElectionTimeout = "500"
)

// etcdOptions selects how startEtcd configures the server.
type etcdOptions struct {
	// defaultRaftTiming keeps etcd's own 100ms/1000ms timing, whose
	// minimum lease TTL is 2s.
	defaultRaftTiming bool
	// pki, when set, makes the server serve clients over TLS only.
	pki *testPKI
	// clientCertAuth requires clients to present a certificate of pki.
	clientCertAuth bool
}

// etcdServer is a real etcd process on loopback ports.
type etcdServer struct {
	*testserver.Process
	// addr is the client address, "127.0.0.1:port".
	addr string
}

// startEtcd starts a single-member etcd process in a temporary directory.
// The test fails if it is not ready within testserver's timeout; the
// process is killed when the test ends.
func startEtcd(t testing.TB, opts etcdOptions) *etcdServer {
	t.Helper()
	ports := testserver.FreePorts(t, 2)
	return startMembers(t, opts, ports[:1], ports[1:])[0]
}

// startCluster starts an n-member etcd cluster, every member a process of
// its own, and waits until it has a leader.
func startCluster(t testing.TB, n int) []*etcdServer {
	t.Helper()
	ports := testserver.FreePorts(t, 2*n)
	return startMembers(t, etcdOptions{}, ports[:n], ports[n:])
}

func startMembers(t testing.TB, opts etcdOptions, clientPorts, peerPorts []int) []*etcdServer {
	t.Helper()
	bin := testserver.Binary(t, "etcd")
	scheme := "http"
	if opts.pki != nil {
		scheme = "https"
	}
	var cluster []string
	for i, p := range peerPorts {
		cluster = append(cluster, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, p))
	}
	// One member alone is ready when it answers; cluster members are
	// ready only together, so they are started first and checked after.
	alone := len(clientPorts) == 1
	servers := make([]*etcdServer, len(clientPorts))
	for i := range clientPorts {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPorts[i]))
		clientURL := scheme + "://" + addr
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPorts[i])
		args := []string{
			"--name", fmt.Sprintf("m%d", i),
			"--data-dir", "data",
			"--listen-client-urls", clientURL,
			"--advertise-client-urls", clientURL,
			"--listen-peer-urls", peerURL,
			"--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", strings.Join(cluster, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", "electionkit-test",
			"--log-level", "warn",
		}
		if !opts.defaultRaftTiming {
			args = append(args, "--heartbeat-interval", testHeartbeat, "--election-timeout", testElectionTimeout)
		}
		var ready func(context.Context) error
		if opts.pki != nil {
			args = append(args, "--cert-file", opts.pki.ServerCert, "--key-file", opts.pki.ServerKey)
			if opts.clientCertAuth {
				args = append(args, "--client-cert-auth", "--trusted-ca-file", opts.pki.CAFile)
			}
		}
		if alone {
			ready = healthCheck(t, clientURL, opts)
		}
		servers[i] = &etcdServer{
			Process: testserver.Start(t, testserver.Config{
				Name:   fmt.Sprintf("etcd-m%d", i),
				Binary: bin,
				Args:   args,
				Ready:  ready,
			}),
			addr: addr,
		}
	}
	if !alone {
		waitHealthy(t, servers)
	}
	return servers
}

// healthCheck returns a Ready function that asks the member's /health
// endpoint, which answers true once the member serves linearizable reads.
func healthCheck(t testing.TB, clientURL string, opts etcdOptions) func(context.Context) error {
	transport := &http.Transport{DisableKeepAlives: true}
	if opts.pki != nil {
		cfg := &tls.Config{RootCAs: certPool(t, opts.pki.CAFile)}
		if opts.clientCertAuth {
			cert, err := tls.LoadX509KeyPair(opts.pki.ClientCert, opts.pki.ClientKey)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		transport.TLSClientConfig = cfg
	}
	client := &http.Client{Transport: transport}
	t.Cleanup(transport.CloseIdleConnections)
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"health":"true"`) {
			return fmt.Errorf("/health: %s %s", resp.Status, body)
		}
		return nil
	}
}

// waitHealthy waits until every member reports healthy.
func waitHealthy(t testing.TB, servers []*etcdServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testserver.DefaultReadyTimeout)
	defer cancel()
	for _, s := range servers {
		check := healthCheck(t, "http://"+s.addr, etcdOptions{})
		for {
			err := check(ctx)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("cluster member %s not healthy: %v", s.addr, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func certPool(t testing.TB, file string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(filepath.Clean(file))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", file)
	}
	return pool
}
