package etcd_test

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
)

// TestPrefixIsolation: elections under different prefixes never share a
// key, even when prefix + "/" + name would read the same; names with the
// escape characters and non-ASCII text round-trip.
func TestPrefixIsolation(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	open := func(prefix string) election.Session {
		return openSession(t, newBackend(t, etcd.Config{Endpoints: []string{srv.addr}, Prefix: prefix}), time.Second)
	}
	pairs := []struct{ prefix, name string }{
		{"a", "b/x"}, {"a/b", "x"}, // both would be "a/b/x" unescaped
		{"a", "b%2Fx"}, // the escaped form of the first, as a name
		{"p", "100%"}, {"p", "100%25"},
		{"p", "wahl-ü-選挙"}, {"q", "wahl-ü-選挙"},
	}
	for _, p := range pairs {
		s := open(p.prefix)
		c, err := s.Claim(ctx, election.ClaimRequest{Name: p.name, Token: "t-" + p.prefix + p.name, ID: p.prefix + "|" + p.name})
		if err != nil {
			t.Fatalf("Claim(prefix %q, name %q) = %v: collided with another pair", p.prefix, p.name, err)
		}
		b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}, Prefix: p.prefix})
		l, err := b.Leader(ctx, p.name)
		if err != nil || l.ID != p.prefix+"|"+p.name || l.Election != p.name || l.Fence != c.Fence {
			t.Fatalf("Leader(prefix %q, name %q) = %+v, %v", p.prefix, p.name, l, err)
		}
	}
	resp, err := rawClient(t, srv.addr).Get(ctx, "", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	// Each key is the election's key, the entry marker, then the lease ID
	// and the session's sequence number.
	var keys []string
	for _, kv := range resp.Kvs {
		k, _, ok := strings.Cut(string(kv.Key), "%00")
		if !ok || !entrySuffix.MatchString(string(kv.Key)[len(k)+3:]) {
			t.Fatalf("key %q is not an election key + %%00 + lease-sequence", kv.Key)
		}
		keys = append(keys, k)
	}
	want := []string{"a/b%252Fx", "a/b%2Fx", "a/b/x", "p/100%25", "p/100%2525", "p/wahl-ü-選挙", "q/wahl-ü-選挙"}
	// etcd returns keys in byte order.
	if !slices.Equal(keys, want) {
		t.Fatalf("stored keys = %q, want %q", keys, want)
	}
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}, Prefix: "a"})
	if _, err := b.Leader(ctx, "b"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("Leader(prefix a, name b) = %v: a prefix's keys leak into a shorter prefix", err)
	}
}

var entrySuffix = regexp.MustCompile(`^[0-9a-f]{16}-[1-9][0-9]*$`)
