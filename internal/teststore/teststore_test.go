package teststore

import (
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if a readiness check leaves a goroutine
// behind, as it would fail the backends' own leak checks.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func assertLoopback(t *testing.T, addr string) {
	t.Helper()
	if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
		t.Errorf("address %q is not on 127.0.0.1 (%v)", addr, err)
	}
}

func TestTLSValidateReportsEveryProblem(t *testing.T) {
	err := (&TLS{ClientCertAuth: true, ClientKeyFile: "client-key.pem"}).validate()
	for _, want := range []string{"CAFile", "CertFile", "go together", "ClientCertAuth"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate = %v, want it to mention %s", err, want)
		}
	}
	if err := (&TLS{CAFile: "ca", CertFile: "c", KeyFile: "k"}).validate(); err != nil {
		t.Errorf("validate of a server-only TLS = %v", err)
	}
}

// TestEtcdRestart: a single member is healthy when StartEtcd returns, and
// again after a restart on the same address.
func TestEtcdRestart(t *testing.T) {
	m := StartEtcd(t, EtcdOptions{})
	assertLoopback(t, m.Addr)
	ctx := t.Context() // Stop and Start are bounded by testserver's timeouts
	if err := m.health(ctx); err != nil {
		t.Fatalf("health after StartEtcd: %v", err)
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	WaitEtcdHealthy(t, []*Etcd{m})
}

// TestRedisArgs: extra arguments reach the server (a password makes PING
// answer NOAUTH, which still counts as ready), and a restarted server
// answers on the same address.
func TestRedisArgs(t *testing.T) {
	r := StartRedis(t, RedisOptions{Args: []string{"--requirepass", "secret"}})
	assertLoopback(t, r.Addr)
	ctx := t.Context() // Stop and Start are bounded by testserver's timeouts
	conn, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET k\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "-NOAUTH") {
		t.Errorf("GET without the password answered %q, want NOAUTH", buf[:n])
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := redisPing(ctx, r.Addr, nil); err != nil {
		t.Errorf("PING after restart: %v", err)
	}
}

// TestConsulACL: with ACLs the agent hides its node from the anonymous
// token and shows it to Token; MinTTL is reported as configured.
func TestConsulACL(t *testing.T) {
	c := StartConsul(t, ConsulOptions{ACL: true, MinTTL: 2 * time.Second})
	assertLoopback(t, c.Addr)
	if c.Token == "" || c.MinTTL != 2*time.Second || c.Started <= 0 {
		t.Errorf("Consul = %+v, want a token, MinTTL 2s and a start time", c)
	}
	ctx := t.Context() // Stop and Start are bounded by testserver's timeouts
	client := newCheckClient(t, nil)
	url := "http://" + c.Addr + "/v1/catalog/node/" + consulNode
	for token, visible := range map[string]bool{c.Token: true, "": false} {
		var node struct{ Node *struct{ Node string } }
		err := getJSON(ctx, client, url, token, &node)
		if got := err == nil && node.Node != nil; got != visible {
			t.Errorf("token %q: node visible = %v (%v), want %v", token, got, err, visible)
		}
	}
}

// TestConsulTLS: an agent started with client-certificate auth answers
// only HTTPS, and only to a client that trusts its CA and presents a
// certificate of it.
func TestConsulTLS(t *testing.T) {
	pki := NewPKI(t, "consul")
	files := pki.TLS(true)
	c := StartConsul(t, ConsulOptions{TLS: files})
	assertLoopback(t, c.Addr)
	if c.URL != "https://"+c.Addr {
		t.Errorf("URL = %q, want https://%s", c.URL, c.Addr)
	}
	ctx := t.Context()
	path := "/v1/catalog/node/" + consulNode
	var node struct{ Node *struct{ Node string } }
	good, err := files.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := getJSON(ctx, newCheckClient(t, good), c.URL+path, "", &node); err != nil || node.Node == nil {
		t.Errorf("HTTPS with the client certificate: node %+v, %v", node.Node, err)
	}
	noCert, err := (&TLS{CAFile: pki.CAFile}).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	for what, get := range map[string]func() error{
		"plain HTTP":            func() error { return getJSON(ctx, newCheckClient(t, nil), "http://"+c.Addr+path, "", &node) },
		"no client certificate": func() error { return getJSON(ctx, newCheckClient(t, noCert), c.URL+path, "", &node) },
	} {
		if err := get(); err == nil {
			t.Errorf("%s: the agent served the request", what)
		} else {
			t.Logf("%s: %v", what, err)
		}
	}
}
