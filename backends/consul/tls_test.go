package consul

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/teststore"
)

// TestTLS specifies HTTPS against an agent that serves its API over HTTPS
// only and requires client certificates (verify_incoming). With the
// agent's CA and a client certificate it signed, the backend works end to
// end, however HTTPS is asked for. Every mismatch leaves New succeeding
// (it does no I/O) and makes every operation fail with an error that names
// what to fix.
func TestTLS(t *testing.T) {
	clearConsulEnv(t) // no CONSUL_CACERT or CONSUL_CLIENT_CERT from the machine
	pki := teststore.NewPKI(t, "consul")
	stranger := teststore.NewPKI(t, "stranger")
	a := startAgent(t, agentOptions{tls: pki.TLS(true)})
	good := TLSConfig{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
	// https configures a backend for https://addr with tlsConfig.
	https := func(tlsConfig TLSConfig) func(*Config) {
		return func(c *Config) { c.Address, c.TLS = "https://"+a.addr, tlsConfig }
	}
	with := func(edit func(*TLSConfig)) TLSConfig {
		c := good
		edit(&c)
		return c
	}

	t.Run("TrustedCAAndClientCert", func(t *testing.T) {
		for what, mod := range map[string]func(*Config){
			"https:// Address":     https(good),
			"Scheme https":         func(c *Config) { c.Scheme, c.TLS = "https", good },
			"ServerName localhost": https(with(func(c *TLSConfig) { c.ServerName = "localhost" })),
		} {
			endToEnd(t, what, a.backend(t, mod))
		}
		q := url.Values{"tls": {"true"}, "ca_file": {pki.CAFile}, "cert_file": {pki.ClientCert},
			"key_file": {pki.ClientKey}, "min_ttl": {testMinTTL.String()}}
		b, err := OpenURL(t.Context(), &url.URL{Scheme: Scheme, Host: a.addr, RawQuery: q.Encode()})
		if err != nil {
			t.Fatalf("OpenURL: %v", err)
		}
		defer b.Close()
		endToEnd(t, "consul://…?tls=true&ca_file=…", b)
	})

	// What the client itself finds wrong, or the agent names exactly, is a
	// configuration error that retrying cannot fix.
	t.Run("InvalidArgument", func(t *testing.T) {
		for what, f := range map[string]mismatch{
			"unknown CA": {
				https(with(func(c *TLSConfig) { c.CAFile = stranger.CAFile })), "agent's TLS certificate rejected",
			},
			"system roots": {
				https(with(func(c *TLSConfig) { c.CAFile = "" })), "agent's TLS certificate rejected",
			},
			"wrong ServerName": {
				https(with(func(c *TLSConfig) { c.ServerName = "consul.example" })), "agent's TLS certificate rejected",
			},
			"http:// Address": {
				func(c *Config) { c.Address, c.TLS = "http://"+a.addr, good }, "agent speaks HTTPS",
			},
			"host:port, no Scheme": {
				nil, "agent speaks HTTPS", // the default scheme is http
			},
		} {
			f.check(t, a, what, election.ErrInvalidArgument, election.ErrUnavailable)
		}
	})

	// HTTPS sent to an agent's plain HTTP port is as wrong, the other way.
	t.Run("HTTPSToPlainAgent", func(t *testing.T) {
		plain := startAgent(t, agentOptions{})
		mismatch{
			func(c *Config) { c.Address, c.TLS = "https://"+plain.addr, good }, "agent speaks plain HTTP",
		}.check(t, plain, "https:// Address", election.ErrInvalidArgument, election.ErrUnavailable)
		mismatch{
			func(c *Config) { c.Scheme, c.TLS = "https", good }, "agent speaks plain HTTP",
		}.check(t, plain, "Scheme https", election.ErrInvalidArgument, election.ErrUnavailable)
	})

	// The agent refuses a client certificate, or its absence, with a TLS
	// alert after the handshake and hangs up. A request may see the alert
	// or only the hang-up (reset, broken pipe, HTTP/2 "could not be
	// established"), which an agent going down causes too: ErrUnavailable,
	// naming the client certificate either way.
	t.Run("ClientCertificateRefused", func(t *testing.T) {
		for what, tlsConfig := range map[string]TLSConfig{
			"no client certificate":            {CAFile: pki.CAFile},
			"client certificate of another CA": {CAFile: pki.CAFile, CertFile: stranger.ClientCert, KeyFile: stranger.ClientKey},
		} {
			mismatch{https(tlsConfig), "client certificate"}.check(t, a, what, election.ErrUnavailable, election.ErrInvalidArgument)
		}
	})
}

// mismatch is a backend configuration the TLS agent refuses, and what the
// error must say.
type mismatch struct {
	mod  func(*Config)
	says string
}

// check makes a backend of a with f.mod and asserts that New succeeds and
// OpenSession, Leader and a watch each fail with an error wrapping want,
// not wrapping not, and saying f.says.
func (f mismatch) check(t *testing.T, a *testAgent, what string, want, not error) {
	t.Helper()
	b := a.backend(t, f.mod)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, openErr := b.OpenSession(ctx, testMinTTL)
	_, leaderErr := b.Leader(ctx, "tls")
	ch, err := b.Watch(ctx, "tls")
	if err != nil {
		t.Fatalf("%s: Watch: %v", what, err)
	}
	watchErr := next(t, ch, 20*time.Second).Err
	for op, err := range map[string]error{"OpenSession": openErr, "Leader": leaderErr, "Watch": watchErr} {
		if !errors.Is(err, want) || errors.Is(err, not) || !strings.Contains(err.Error(), f.says) {
			t.Errorf("%s: %s = %v, want %v (not %v) saying %q", what, op, err, want, not, f.says)
		}
	}
	t.Logf("%s: %v", what, openErr)
}

// endToEnd opens a session of b, watches an election, claims it, reads its
// leader, sees the claim in the watch, releases it and reads it vacant:
// every kind of request the backend makes.
func endToEnd(t *testing.T, what string, b *Backend) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := b.OpenSession(ctx, testMinTTL)
	if err != nil {
		t.Fatalf("%s: OpenSession: %v", what, err)
	}
	defer s.Close(context.Background())
	ch, err := b.Watch(ctx, "tls")
	if err != nil {
		t.Fatalf("%s: Watch: %v", what, err)
	}
	if ev := next(t, ch, 10*time.Second); ev.Err != nil || ev.Leader != nil {
		t.Fatalf("%s: first watch event = %+v, want vacant", what, ev)
	}
	c := claim(t, s, "tls", "token", "a")
	if l, err := b.Leader(ctx, "tls"); err != nil || l.ID != "a" || l.Fence != c.Fence {
		t.Fatalf("%s: Leader = %+v, %v; want a with fence %d", what, l, err, c.Fence)
	}
	if ev := next(t, ch, 10*time.Second); ev.Leader == nil || ev.Leader.Fence != c.Fence {
		t.Fatalf("%s: watch event after the claim = %+v", what, ev)
	}
	if err := s.Release(ctx, c); err != nil {
		t.Fatalf("%s: Release: %v", what, err)
	}
	if _, err := b.Leader(ctx, "tls"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("%s: Leader after Release = %v, want ErrNoLeader", what, err)
	}
}
