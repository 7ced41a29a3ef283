package etcd_test

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestOpenURL: an etcd:// URL opens a working backend through the
// registry, with the elector's own parameters taken out by the core.
func TestOpenURL(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	if !slices.Contains(election.Schemes(), etcd.Scheme) {
		t.Fatalf("scheme %q not registered: %v", etcd.Scheme, election.Schemes())
	}
	raw := "etcd://" + srv.addr + "/myapp/elections?dial_timeout=3s&ttl=2s"
	b, cfg, err := election.Open(ctx, raw)
	if err != nil {
		t.Fatalf("Open(%s): %v", raw, err)
	}
	t.Cleanup(func() { _ = election.CloseBackend(b) })
	if cfg.TTL != 2*time.Second {
		t.Errorf("elector TTL from the URL = %v, want 2s", cfg.TTL)
	}
	s := openSession(t, b, time.Second)
	claim(t, s, "from-url", "a")
	resp, err := rawClient(t, srv.addr).Get(ctx, "myapp/elections/from-url%00", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("claim not stored under the URL's prefix: %v, %d keys", err, len(resp.Kvs))
	}
}

// TestOpenURLRejected: malformed URLs fail before dialing, with every
// problem named and no password echoed.
func TestOpenURLRejected(t *testing.T) {
	cases := map[string][]string{
		"etcd:///prefix": {"no host"},
		"etcd://127.0.0.1:2379/?retries=3&color=blue":                  {"color, retries"},
		"etcd://127.0.0.1:2379/?dial_timeout=soon":                     {"dial_timeout"},
		"etcd://127.0.0.1:2379/?dial_timeout=1s&dial_timeout=2s":       {"dial_timeout", "2 times"},
		"etcd://127.0.0.1:2379/?dial_timeout=":                         {`url dial_timeout: "" is not a positive duration`},
		"etcd://127.0.0.1:2379/?dial_timeout=0s":                       {`url dial_timeout: "0s" is not a positive duration`},
		"etcd://127.0.0.1:2379/?lazy=sometimes":                        {`url lazy: "sometimes" is not a boolean`},
		"etcd://127.0.0.1:2379/?tls=maybe":                             {"tls"},
		"etcd://127.0.0.1:2379/?tls=false&ca_file=/ca.pem":             {"tls"},
		"etcd://u:hunter2@127.0.0.1:2379/?username=v&password=hunter2": {"username"},
		"etcd://127.0.0.1:2379/?username=alice":                        {"Username"},
		"etcd://127.0.0.1,127.0.0.2:2379/p":                            {"Endpoints[0]"},
		"redis://127.0.0.1:6379/":                                      {"scheme"},
	}
	for raw, says := range cases {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("url.Parse(%s): %v", raw, err)
		}
		b, err := etcd.OpenURL(testCtx(t), u)
		if err == nil {
			b.Close()
			t.Errorf("OpenURL(%s) succeeded", raw)
			continue
		}
		if !errors.Is(err, election.ErrInvalidArgument) {
			t.Errorf("OpenURL(%s) = %v, want ErrInvalidArgument", raw, err)
		}
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("OpenURL(%s) = %v, want it to mention %q", raw, err, s)
			}
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("OpenURL(%s) leaked the password: %v", raw, err)
		}
	}
}
