package consul

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election/internal/teststore"
)

// testMinTTL is the session_ttl_min the test agents run with, and the
// MinTTL the test backends are told about.
const testMinTTL = teststore.DefaultConsulMinTTL

// testAgent is one real Consul server started for a test (see
// teststore.Consul): a single-node server with a persistent data directory,
// so that a restart keeps sessions, keys and the Raft index.
type testAgent struct {
	*teststore.Consul
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
	// tls, when set, makes the agent serve its API over HTTPS only at
	// addr. The client helper does not work then, and backend needs an
	// https Address and TLS files from its mod.
	tls *teststore.TLS
}

// startAgent starts a Consul server and waits until it has a Raft leader
// and its node is in the catalog, which is when sessions can be created.
func startAgent(t testing.TB, opts agentOptions) *testAgent {
	t.Helper()
	c := teststore.StartConsul(t, teststore.ConsulOptions{ACL: opts.acl, MinTTL: testMinTTL, TLS: opts.tls})
	return &testAgent{Consul: c, addr: c.Addr, token: c.Token, started: c.Started}
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
