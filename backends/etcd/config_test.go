package etcd_test

import (
	"crypto/tls"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
)

// TestConfigRejected: New validates the whole Config before dialing and
// reports every problem at once, each wrapping ErrInvalidArgument and
// naming its field; secrets never appear in the text.
func TestConfigRejected(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	cases := []struct {
		name   string
		cfg    etcd.Config
		fields []string
	}{
		{"empty", etcd.Config{}, []string{"Endpoints"}},
		{"everything wrong at once", etcd.Config{
			Endpoints:   []string{"http://127.0.0.1:2379", "no-port", "ftp://127.0.0.1:21"},
			DialTimeout: -1,
			Username:    "alice",
			TLS:         etcd.TLSConfig{CAFile: missing, CertFile: missing},
		}, []string{"Endpoints[0]", "Endpoints[1]", "Endpoints[2]", "DialTimeout", "Username", "TLS.CAFile", "TLS.CertFile"}},
		{"password without user", etcd.Config{Endpoints: []string{"127.0.0.1:2379"}, Password: "hunter2"}, []string{"Username"}},
		{"TLS config and files", etcd.Config{Endpoints: []string{"127.0.0.1:2379"},
			TLS: etcd.TLSConfig{Config: &tls.Config{}, CAFile: missing}}, []string{"TLS.Config"}},
		{"mixed schemes", etcd.Config{Endpoints: []string{"https://127.0.0.1:2379", "127.0.0.1:2380"}}, []string{"Endpoints"}},
		{"percent in prefix", etcd.Config{Endpoints: []string{"127.0.0.1:2379"}, Prefix: "app%2F"}, []string{"Prefix"}},
		{"endpoint with a path", etcd.Config{Endpoints: []string{"http://127.0.0.1:2379/v3"}}, []string{"Endpoints[0]"}},
		{"client and dial settings", etcd.Config{Client: &clientv3.Client{}, Endpoints: []string{"127.0.0.1:2379"},
			Username: "u", Password: "p", TLS: etcd.TLSConfig{Config: &tls.Config{}}}, []string{"Endpoints", "TLS", "Username"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := etcd.New(tc.cfg)
			if err == nil {
				b.Close()
				t.Fatalf("New succeeded")
			}
			if !errors.Is(err, election.ErrInvalidArgument) {
				t.Fatalf("New = %v, want ErrInvalidArgument", err)
			}
			for _, f := range tc.fields {
				if !strings.Contains(err.Error(), f+":") {
					t.Errorf("error does not name %s:\n%v", f, err)
				}
			}
			if got, want := strings.Count(err.Error(), "invalid argument"), len(tc.fields); got != want {
				t.Errorf("error reports %d problems, want %d:\n%v", got, want, err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("password in error: %v", err)
			}
		})
	}
}
