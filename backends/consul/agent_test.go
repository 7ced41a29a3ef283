package consul

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election/internal/testserver"
)

// testMinTTL is the session_ttl_min the test agents run with, and the
// MinTTL the test backends are told about.
const testMinTTL = time.Second

// testAgent is one real Consul server started for a test: a single-node
// server (-server, bootstrap_expect 1) with a persistent data directory, so
// that a restart keeps sessions, keys and the Raft index, bound to
// 127.0.0.1 with DNS, gRPC and WAN gossip disabled and no update checks.
type testAgent struct {
	*testserver.Process
	addr  string // HTTP API, 127.0.0.1:port
	token string // management token, "" without ACLs
	// started is how long the first start took until a session could be
	// created.
	started time.Duration
}

type agentOptions struct {
	// acl enables ACLs with default policy deny; token is then the
	// management token (also the agent's own token).
	acl bool
}

// startAgent starts a Consul server and waits until it has a Raft leader
// and its node is in the catalog, which is when sessions can be created.
func startAgent(t testing.TB, opts agentOptions) *testAgent {
	t.Helper()
	bin := testserver.Binary(t, "consul")
	ports := testserver.FreePorts(t, 3)
	dir := t.TempDir()
	a := &testAgent{addr: "127.0.0.1:" + strconv.Itoa(ports[0])}
	conf := map[string]any{
		"node_name":        "electionkit-test",
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
		"session_ttl_min":             testMinTTL.String(),
		// Raft timeouts of 1s instead of 5s: a leader within a second or two.
		"performance": map[string]any{"raft_multiplier": 1},
		"ui_config":   map[string]any{"enabled": false},
		"connect":     map[string]any{"enabled": false},
		"peering":     map[string]any{"enabled": false},
		"log_level":   "warn",
	}
	if opts.acl {
		a.token = "6c0f5b2e-8f6a-4d0c-9f59-0123456789ab"
		conf["acl"] = map[string]any{
			"enabled": true, "default_policy": "deny", "enable_token_persistence": false,
			"tokens": map[string]string{"initial_management": a.token, "agent": a.token},
		}
	}
	confPath := filepath.Join(dir, "agent.json")
	data, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(confPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	a.Process = testserver.Start(t, testserver.Config{
		Name:   "consul",
		Binary: bin,
		Args:   []string{"agent", "-config-file=" + confPath},
		Dir:    dir,
		Ready:  a.ready,
	})
	a.started = time.Since(begin)
	t.Logf("consul agent on %s ready in %v", a.addr, a.started.Round(time.Millisecond))
	return a
}

// readyClient keeps no idle connections, which would outlive the test.
var readyClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// ready reports whether the agent's node is registered with a Raft
// leader's catalog, the last step before sessions can be created.
func (a *testAgent) ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.addr+"/v1/catalog/node/electionkit-test", nil)
	if err != nil {
		return err
	}
	if a.token != "" {
		req.Header.Set("X-Consul-Token", a.token)
	}
	resp, err := readyClient.Do(req)
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
}

// client returns a raw API client of the agent with the management token,
// for the tests' own look at the store.
func (a *testAgent) client(t *testing.T) *api.Client {
	t.Helper()
	cfg := api.DefaultNonPooledConfig()
	cfg.Address, cfg.Token = a.addr, a.token
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// backend returns a Backend of the agent with test settings; mod adjusts
// the Config. The backend is closed when the test ends.
func (a *testAgent) backend(t *testing.T, mod func(*Config)) *Backend {
	t.Helper()
	cfg := Config{Address: a.addr, Token: a.token, MinTTL: testMinTTL, WatchWait: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
