package etcd_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
	"github.com/electionkit/election/internal/testserver"
	"github.com/electionkit/election/internal/teststore"
)

// TestUnreachable: New against a port nobody listens on fails within about
// the dial timeout with ErrUnavailable, saying why.
func TestUnreachable(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testserver.FreePort(t)))
	start := time.Now()
	_, err := etcd.New(etcd.Config{Endpoints: []string{addr}, DialTimeout: time.Second})
	took := time.Since(start)
	if !errors.Is(err, election.ErrUnavailable) {
		t.Fatalf("New = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not say the connection to %s was refused", err, addr)
	}
	if took > 10*time.Second {
		t.Errorf("New took %v with a 1s dial timeout", took)
	}
	t.Logf("unreachable: %v after %v", err, took.Round(time.Millisecond))
}

// TestAuth: against a server with authentication enabled, the right user
// works, and a wrong password, missing credentials or a user without
// permission on the prefix fail New with ErrInvalidArgument.
func TestAuth(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	enableAuth(ctx, t, rawClient(t, srv.addr), authUser{"alice", "elector", clientv3.PermissionType(clientv3.PermReadWrite)})

	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}, Prefix: "app", Username: "alice", Password: "alice-password"})
	s := openSession(t, b, time.Second)
	c := claim(t, s, "authorized", "alice")
	if err := s.Renew(ctx, []election.Claim{c}); err != nil {
		t.Fatalf("Renew as alice: %v", err)
	}

	for what, cfg := range map[string]etcd.Config{
		"wrong password":           {Prefix: "app", Username: "alice", Password: "guess"},
		"unknown user":             {Prefix: "app", Username: "mallory", Password: "x"},
		"no credentials":           {Prefix: "app"},
		"no permission on prefix":  {Prefix: "other", Username: "alice", Password: "alice-password"},
		"no permission, shorthand": {Prefix: "ap", Username: "alice", Password: "alice-password"},
	} {
		cfg.Endpoints = []string{srv.addr}
		cfg.DialTimeout = 5 * time.Second
		b, err := etcd.New(cfg)
		if err == nil {
			b.Close()
			t.Errorf("%s: New succeeded", what)
			continue
		}
		if !errors.Is(err, election.ErrInvalidArgument) || errors.Is(err, election.ErrUnavailable) {
			t.Errorf("%s: New = %v, want ErrInvalidArgument only", what, err)
		}
		if strings.Contains(err.Error(), "guess") || strings.Contains(err.Error(), "alice-password") {
			t.Errorf("%s: the password leaked into the error: %v", what, err)
		}
		t.Logf("%s: %v", what, err)
	}
}

// authUser is a user with the password "<name>-password" and a role of its
// own with one permission on the prefix "app"'s range, app/ to app0.
type authUser struct {
	name, role string
	perm       clientv3.PermissionType
}

// enableAuth adds root, the users and their roles, then enables auth.
func enableAuth(ctx context.Context, t *testing.T, admin *clientv3.Client, users ...authUser) {
	t.Helper()
	steps := []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "root-password"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
	}
	for _, u := range users {
		steps = append(steps,
			func() error { _, err := admin.RoleAdd(ctx, u.role); return err },
			func() error { _, err := admin.RoleGrantPermission(ctx, u.role, "app/", "app0", u.perm); return err },
			func() error { _, err := admin.UserAdd(ctx, u.name, u.name+"-password"); return err },
			func() error { _, err := admin.UserGrantRole(ctx, u.name, u.role); return err },
		)
	}
	steps = append(steps, func() error { _, err := admin.AuthEnable(ctx); return err })
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}
}

// TestTLS: against a TLS server that requires client certificates, the
// right CA and certificate work; an unknown CA is a clear
// ErrInvalidArgument naming the certificate problem; plain text, or no
// client certificate, fail New.
func TestTLS(t *testing.T) {
	pki := teststore.NewPKI(t, "good")
	stranger := teststore.NewPKI(t, "stranger")
	srv := startEtcd(t, etcdOptions{pki: &pki, clientCertAuth: true})
	ctx := testCtx(t)

	good := etcd.TLSConfig{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
	for _, ep := range []string{srv.addr, "https://" + srv.addr} {
		b := newBackend(t, etcd.Config{Endpoints: []string{ep}, TLS: good})
		s := openSession(t, b, time.Second)
		c := claim(t, s, "tls", "a")
		if err := s.Release(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	cert, err := tls.LoadX509KeyPair(pki.ClientCert, pki.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}, TLS: etcd.TLSConfig{
		Config: &tls.Config{RootCAs: certPool(t, pki.CAFile), Certificates: []tls.Certificate{cert}},
	}})
	if _, err := b.Leader(ctx, "tls"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("Leader over a *tls.Config: %v", err)
	}

	type failure struct {
		cfg  etcd.Config
		want error
		says string
	}
	for what, f := range map[string]failure{
		"unknown CA": {
			cfg:  etcd.Config{TLS: etcd.TLSConfig{CAFile: stranger.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}},
			want: election.ErrInvalidArgument, says: "certificate",
		},
		"system roots": {
			cfg:  etcd.Config{TLS: etcd.TLSConfig{Config: &tls.Config{}}},
			want: election.ErrInvalidArgument, says: "certificate",
		},
		"no client certificate": {
			cfg:  etcd.Config{TLS: etcd.TLSConfig{CAFile: pki.CAFile}},
			want: election.ErrUnavailable, says: "agree on TLS",
		},
		"plain text": {
			cfg:  etcd.Config{},
			want: election.ErrUnavailable, says: "agree on TLS",
		},
	} {
		f.cfg.Endpoints = []string{srv.addr}
		f.cfg.DialTimeout = time.Second
		b, err := etcd.New(f.cfg)
		if err == nil {
			b.Close()
			t.Errorf("%s: New succeeded", what)
			continue
		}
		if !errors.Is(err, f.want) || !strings.Contains(err.Error(), f.says) {
			t.Errorf("%s: New = %v, want %v saying %q", what, err, f.want, f.says)
		}
		t.Logf("%s: %v", what, err)
	}
}
