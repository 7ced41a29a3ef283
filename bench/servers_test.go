package bench

import (
	"bufio"
	"context"
	"encoding/json"
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

// The servers are started the way each backend's own tests start them
// (backends/etcd/etcdproc_test.go, backends/redis/main_test.go,
// backends/consul/agent_test.go): real processes from bin/ or Debian, on
// random loopback ports, in temporary directories, killed when the
// benchmark ends.

// etcd's Raft timing: a 500ms election timeout makes etcd's minimum lease TTL
// ceil(1.5 × 0.5s) = 1s, so crash takeovers can use 1s TTLs, as the etcd
// backend's tests do.
const (
	etcdHeartbeat       = "50"
	etcdElectionTimeout = "500"
)

// consulMinTTL is the session_ttl_min the Consul agent runs with. Consul
// accepts any value there; 1s is the TTL every store uses for the crash
// scenario (etcd cannot go lower).
const consulMinTTL = time.Second

// startEtcd starts a single-member etcd and returns its client address.
func startEtcd(tb testing.TB) string {
	tb.Helper()
	ports := testserver.FreePorts(tb, 2)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	clientURL := "http://" + addr
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	health := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	testserver.Start(tb, testserver.Config{
		Name:   "etcd",
		Binary: testserver.Binary(tb, "etcd"),
		Args: []string{
			"--name", "m0",
			"--data-dir", "data",
			"--listen-client-urls", clientURL,
			"--advertise-client-urls", clientURL,
			"--listen-peer-urls", peerURL,
			"--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", "m0=" + peerURL,
			"--initial-cluster-state", "new",
			"--initial-cluster-token", "electionkit-bench",
			"--log-level", "warn",
			"--heartbeat-interval", etcdHeartbeat,
			"--election-timeout", etcdElectionTimeout,
		},
		Ready: func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
			if err != nil {
				return err
			}
			resp, err := health.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"health":"true"`) {
				return fmt.Errorf("/health: %s %s", resp.Status, body)
			}
			return nil
		},
	})
	return addr
}

// startRedis starts a redis-server without persistence and returns its
// address.
func startRedis(tb testing.TB) string {
	tb.Helper()
	port := strconv.Itoa(testserver.FreePort(tb))
	addr := net.JoinHostPort("127.0.0.1", port)
	testserver.Start(tb, testserver.Config{
		Name:   "redis-server",
		Binary: testserver.Binary(tb, "redis-server"),
		Args: []string{
			"--port", port, "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no",
			"--loglevel", "warning",
		},
		Ready: func(ctx context.Context) error { return redisPing(ctx, addr) },
	})
	return addr
}

func redisPing(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
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
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// startConsul starts a single-node Consul server with session_ttl_min
// lowered to consulMinTTL and returns its HTTP address. It is ready when its
// node is in the catalog of a Raft leader, which is when sessions can be
// created.
func startConsul(tb testing.TB) string {
	tb.Helper()
	ports := testserver.FreePorts(tb, 3)
	dir := tb.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	conf := map[string]any{
		"node_name":        "electionkit-bench",
		"datacenter":       "dc1",
		"data_dir":         filepath.Join(dir, "data"),
		"server":           true,
		"bootstrap_expect": 1,
		"bind_addr":        "127.0.0.1",
		"client_addr":      "127.0.0.1",
		"advertise_addr":   "127.0.0.1",
		"ports": map[string]int{
			"http": ports[0], "serf_lan": ports[1], "server": ports[2],
			"serf_wan": -1, "dns": -1, "https": -1, "grpc": -1, "grpc_tls": -1,
		},
		"disable_update_check":        true,
		"disable_anonymous_signature": true,
		"disable_host_node_id":        true,
		"session_ttl_min":             consulMinTTL.String(),
		"performance":                 map[string]any{"raft_multiplier": 1},
		"ui_config":                   map[string]any{"enabled": false},
		"connect":                     map[string]any{"enabled": false},
		"peering":                     map[string]any{"enabled": false},
		"log_level":                   "warn",
	}
	data, err := json.Marshal(conf)
	if err != nil {
		tb.Fatal(err)
	}
	confPath := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(confPath, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	catalog := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	begin := time.Now()
	testserver.Start(tb, testserver.Config{
		Name:   "consul",
		Binary: testserver.Binary(tb, "consul"),
		Args:   []string{"agent", "-config-file=" + confPath},
		Dir:    dir,
		Ready: func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/catalog/node/electionkit-bench", nil)
			if err != nil {
				return err
			}
			resp, err := catalog.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var node struct{ Node *struct{ Node string } }
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("catalog: %s", resp.Status)
			}
			if err := json.NewDecoder(resp.Body).Decode(&node); err != nil {
				return err
			}
			if node.Node == nil {
				return fmt.Errorf("node not registered yet")
			}
			return nil
		},
	})
	tb.Logf("consul agent on %s ready in %v", addr, time.Since(begin).Round(time.Millisecond))
	return addr
}
