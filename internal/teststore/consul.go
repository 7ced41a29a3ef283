package teststore

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/electionkit/election/internal/testserver"
)

// DefaultConsulMinTTL is the session_ttl_min of agents whose
// ConsulOptions.MinTTL is zero: 1s, the TTL tests and benchmarks campaign
// with (etcd cannot go lower), instead of Consul's own 10s.
const DefaultConsulMinTTL = time.Second

// consulNode is the agents' node name, which the readiness check looks up.
const consulNode = "electionkit-test"

// consulManagementToken is the management token of agents with ACLs.
const consulManagementToken = "6c0f5b2e-8f6a-4d0c-9f59-0123456789ab"

// ConsulOptions selects how [StartConsul] configures the agent. The zero
// value is an agent without ACLs and with [DefaultConsulMinTTL].
type ConsulOptions struct {
	// ACL enables ACLs with default policy deny; [Consul.Token] is then
	// the management token, which is also the agent's own token.
	ACL bool
	// MinTTL is the agent's session_ttl_min, the shortest session TTL it
	// accepts. Zero means [DefaultConsulMinTTL]; a negative value fails the
	// test.
	MinTTL time.Duration
	// TLS, when set, makes the agent serve its HTTP API over HTTPS only:
	// [Consul.Addr] is then the HTTPS port and the plain HTTP port is off.
	// TLS.ClientCertAuth sets verify_incoming on the API, so that the agent
	// refuses clients without a certificate signed by TLS.CAFile. Internal
	// RPC keeps accepting plain text, as the server dials itself. Nil:
	// plain HTTP.
	TLS *TLS
}

// Consul is a single-node Consul server started by [StartConsul]: -server
// with bootstrap_expect 1, bound to 127.0.0.1, with DNS, gRPC and WAN gossip
// disabled, no update checks, Raft timeouts of 1s (raft_multiplier 1), and a
// data directory kept across restarts, so a restarted agent keeps its
// sessions, keys and Raft index. The embedded [testserver.Process] pauses,
// resumes, stops and restarts it; it is a conformance.Store.
type Consul struct {
	*testserver.Process
	// Addr is the HTTP API's address, "127.0.0.1:port", which speaks
	// HTTPS only when ConsulOptions.TLS was set.
	Addr string
	// URL is the HTTP API's base URL: "http://" or "https://" + Addr.
	URL string
	// Token is the management token with ConsulOptions.ACL, else "".
	Token string
	// MinTTL is the session_ttl_min the agent runs with.
	MinTTL time.Duration
	// Started is how long the first start took until sessions could be
	// created.
	Started time.Duration
}

// StartConsul starts a Consul server in a temporary directory and returns
// once its node is in the catalog of a Raft leader, which is when sessions
// can be created. With ConsulOptions.TLS the readiness check asks over
// HTTPS, trusting only TLS.CAFile and presenting the client certificate
// when one is named, so a returned agent is known to accept that client. It
// fails the test if opts is invalid (a negative MinTTL, incomplete or
// unreadable TLS files), the consul binary is missing, or the agent is not
// ready within [testserver.DefaultReadyTimeout]; the process is killed when
// the test ends.
func StartConsul(t testing.TB, opts ConsulOptions) *Consul {
	t.Helper()
	if opts.MinTTL < 0 {
		t.Fatalf("teststore: ConsulOptions.MinTTL is negative (%v)", opts.MinTTL)
	}
	check := newCheckClient(t, checkTLS(t, "ConsulOptions", opts.TLS))
	c := &Consul{MinTTL: opts.MinTTL}
	if c.MinTTL == 0 {
		c.MinTTL = DefaultConsulMinTTL
	}
	if opts.ACL {
		c.Token = consulManagementToken
	}
	bin := testserver.Binary(t, "consul")
	ports := testserver.FreePorts(t, 3)
	c.Addr = "127.0.0.1:" + strconv.Itoa(ports[0])
	c.URL = "http://" + c.Addr
	apiPorts := map[string]int{"http": ports[0], "https": -1}
	if opts.TLS != nil {
		c.URL = "https://" + c.Addr
		apiPorts = map[string]int{"http": -1, "https": ports[0]}
	}
	dir := t.TempDir()
	conf := map[string]any{
		"node_name":        consulNode,
		"datacenter":       "dc1",
		"data_dir":         filepath.Join(dir, "data"),
		"server":           true,
		"bootstrap_expect": 1,
		"bind_addr":        "127.0.0.1",
		"client_addr":      "127.0.0.1",
		"advertise_addr":   "127.0.0.1",
		"ports": map[string]int{
			"http": apiPorts["http"], "https": apiPorts["https"], "serf_lan": ports[1], "server": ports[2],
			"serf_wan": -1, "dns": -1, "grpc": -1, "grpc_tls": -1,
		},
		"disable_update_check":        true,
		"disable_anonymous_signature": true,
		"disable_host_node_id":        true,
		"session_ttl_min":             c.MinTTL.String(),
		// Raft timeouts of 1s instead of 5s: a leader within a second or two.
		"performance": map[string]any{"raft_multiplier": 1},
		"ui_config":   map[string]any{"enabled": false},
		"connect":     map[string]any{"enabled": false},
		"peering":     map[string]any{"enabled": false},
		"log_level":   "warn",
	}
	if opts.ACL {
		conf["acl"] = map[string]any{
			"enabled": true, "default_policy": "deny", "enable_token_persistence": false,
			"tokens": map[string]string{"initial_management": c.Token, "agent": c.Token},
		}
	}
	if opts.TLS != nil {
		// The agent runs in dir: relative paths would not be the caller's.
		abs := func(path string) string {
			p, err := filepath.Abs(path)
			if err != nil {
				t.Fatalf("teststore: ConsulOptions.TLS: %v", err)
			}
			return p
		}
		// The tls stanza of Consul 1.12 and later.
		conf["tls"] = map[string]any{
			"defaults": map[string]any{
				"ca_file": abs(opts.TLS.CAFile), "cert_file": abs(opts.TLS.CertFile), "key_file": abs(opts.TLS.KeyFile),
			},
			// Only on the API: the server dials its own internal RPC port
			// in plain text (autopilot), which verify_incoming would refuse.
			"https": map[string]any{"verify_incoming": opts.TLS.ClientCertAuth},
		}
	}
	data, err := json.Marshal(conf)
	if err != nil {
		t.Fatalf("teststore: consul configuration: %v", err)
	}
	confPath := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(confPath, data, 0o600); err != nil {
		t.Fatalf("teststore: %v", err)
	}
	begin := time.Now()
	c.Process = testserver.Start(t, testserver.Config{
		Name:   "consul",
		Binary: bin,
		Args:   []string{"agent", "-config-file=" + confPath},
		Dir:    dir,
		Ready: func(ctx context.Context) error {
			// The catalog lists the node once a Raft leader has registered
			// it, the last step before sessions can be created.
			var node struct{ Node *struct{ Node string } }
			if err := getJSON(ctx, check, c.URL+"/v1/catalog/node/"+consulNode, c.Token, &node); err != nil {
				return err
			}
			if node.Node == nil {
				return errors.New("node not registered yet")
			}
			return nil
		},
	})
	c.Started = time.Since(begin)
	t.Logf("teststore: consul agent on %s ready in %v", c.Addr, c.Started.Round(time.Millisecond))
	return c
}
