package consul

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

// clearConsulEnv unsets every CONSUL_* variable the client reads, so that
// the machine's environment cannot leak into a test.
func clearConsulEnv(t *testing.T) {
	for _, name := range []string{
		api.HTTPAddrEnvName, api.HTTPTokenEnvName, api.HTTPTokenFileEnvName, api.HTTPAuthEnvName,
		api.HTTPSSLEnvName, api.HTTPCAFile, api.HTTPCAPath, api.HTTPClientCert, api.HTTPClientKey,
		api.HTTPTLSServerName, api.HTTPSSLVerifyEnvName, api.HTTPNamespaceEnvName, api.HTTPPartitionEnvName,
	} {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	clearConsulEnv(t)
	_, err := New(Config{
		Address:   "no-port",
		Scheme:    "ftp",
		Token:     "a",
		TokenFile: "/nonexistent",
		Prefix:    "/lead",
		MinTTL:    -time.Second,
		LockDelay: 2 * time.Minute,
		WatchWait: time.Hour,
		TLS:       TLSConfig{CertFile: "/nonexistent/cert.pem"},
	})
	if !errors.Is(err, election.ErrInvalidArgument) {
		t.Fatalf("New = %v, want ErrInvalidArgument", err)
	}
	for _, field := range []string{"Address", "Scheme", "Token", "Prefix", "MinTTL", "LockDelay", "WatchWait", "TLS.CertFile"} {
		if !strings.Contains(err.Error(), field+":") && !strings.Contains(err.Error(), field+" (or") {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) < 8 {
		t.Errorf("want one joined error per problem, got %v", err)
	}
}

func TestNewDefaults(t *testing.T) {
	clearConsulEnv(t)
	b, err := New(Config{})
	if err != nil {
		t.Fatalf("New(Config{}) = %v", err)
	}
	defer b.Close()
	if b.Prefix() != DefaultPrefix || b.s.minTTL != DefaultMinTTL || b.s.lockDelay != 0 ||
		b.s.watchWait != DefaultWatchWait || b.s.sessionName != DefaultSessionName {
		t.Errorf("defaults not applied: %+v", b.s)
	}
	if b.s.api.Address != "localhost:8500" || b.s.api.Scheme != "http" {
		t.Errorf("address %s://%s, want api.DefaultConfig's http://localhost:8500", b.s.api.Scheme, b.s.api.Address)
	}
	lim := b.Limits()
	if lim.MinTTL != 10*time.Second || lim.MaxTTL != 24*time.Hour {
		t.Errorf("Limits = %+v, want 10s..24h", lim)
	}
}

func TestNewEnvironment(t *testing.T) {
	clearConsulEnv(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(api.HTTPAddrEnvName, "https://consul.example:8501")
	t.Setenv(api.HTTPTokenEnvName, "env-token")
	t.Setenv(api.HTTPTokenFileEnvName, tokenFile)
	t.Setenv(api.HTTPNamespaceEnvName, "team-a")
	t.Setenv(api.HTTPSSLVerifyEnvName, "false")

	b, err := New(Config{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer b.Close()
	// api.NewClient moves the scheme out of the address.
	if b.s.api.Address != "consul.example:8501" || b.s.api.Scheme != "https" || !b.s.api.TLSConfig.InsecureSkipVerify {
		t.Errorf("environment not applied: %+v", b.s.api)
	}
	if b.s.token != "file-token" || b.s.namespace != "team-a" {
		t.Errorf("token %q namespace %q: want CONSUL_HTTP_TOKEN_FILE's token over CONSUL_HTTP_TOKEN, and CONSUL_NAMESPACE", b.s.token, b.s.namespace)
	}

	// Explicit fields win over the environment.
	b2, err := New(Config{Address: "127.0.0.1:8500", Token: "explicit", Namespace: "ns2"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer b2.Close()
	if b2.s.api.Address != "127.0.0.1:8500" || b2.s.token != "explicit" || b2.s.namespace != "ns2" {
		t.Errorf("explicit fields lost to the environment: address %s token %q ns %q", b2.s.api.Address, b2.s.token, b2.s.namespace)
	}

	// A value api.DefaultConfig would ignore with a log line is an error.
	t.Setenv(api.HTTPSSLEnvName, "yes please")
	if _, err := New(Config{}); !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), api.HTTPSSLEnvName) {
		t.Errorf("bad %s: New = %v, want ErrInvalidArgument naming it", api.HTTPSSLEnvName, err)
	}
	t.Setenv(api.HTTPSSLEnvName, "")
	t.Setenv(api.HTTPTokenFileEnvName, filepath.Join(dir, "missing"))
	if _, err := New(Config{}); !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), api.HTTPTokenFileEnvName) {
		t.Errorf("missing token file: New = %v, want ErrInvalidArgument naming %s", err, api.HTTPTokenFileEnvName)
	}
}

func TestNewWithClient(t *testing.T) {
	clearConsulEnv(t)
	c, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{Client: c, Address: "127.0.0.1:1", TokenFile: "x", TLS: TLSConfig{CAFile: "ca"}})
	for _, field := range []string{"Address", "TokenFile", "TLS"} {
		if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), field+":") {
			t.Errorf("Client with %s: New = %v, want ErrInvalidArgument naming it", field, err)
		}
	}
	b, err := New(Config{Client: c, Token: "t", Datacenter: "dc2"})
	if err != nil {
		t.Fatalf("New with Client = %v", err)
	}
	if b.client != c || b.owned != nil {
		t.Errorf("backend did not use the caller's client as is")
	}
	q := b.query(t.Context())
	if q.Token != "t" || q.Datacenter != "dc2" {
		t.Errorf("per-request options = %+v, want token t in dc2", q)
	}
	b.Close()
}

func TestCheckAddress(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8500":          true,
		"consul.service:8500":     true,
		"[::1]:8500":              true,
		"http://127.0.0.1:8500":   true,
		"https://h:8501/gateway":  true,
		"unix:///run/consul.sock": true,
		"unix://":                 false,
		"127.0.0.1":               false,
		"ftp://127.0.0.1:21":      false,
		"http://":                 false,
		"https://no-port/consul":  false,
		"":                        false,
	} {
		if errs := checkAddress("Address", addr, ""); (len(errs) == 0) != ok {
			t.Errorf("checkAddress(%q) = %v, want ok=%v", addr, errs, ok)
		}
	}
	if errs := checkAddress("Address", "https://h:8501", "http"); len(errs) == 0 {
		t.Errorf("Scheme http with an https:// Address was accepted")
	}
}
