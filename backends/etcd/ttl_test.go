package etcd_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
)

// TestGrantedTTL: Session.TTL is the TTL etcd granted, which is what the
// lease really has: etcd with its default raft timing raises 1s to its 2s
// minimum; the test servers' faster timing grants 1s as asked.
func TestGrantedTTL(t *testing.T) {
	cases := []struct {
		name string
		opts etcdOptions
		// asked → granted
		ttls map[time.Duration]time.Duration
	}{
		{"default raft timing", etcdOptions{defaultRaftTiming: true}, map[time.Duration]time.Duration{
			time.Second: 2 * time.Second, 2 * time.Second: 2 * time.Second, 7 * time.Second: 7 * time.Second,
		}},
		{"500ms election timeout", etcdOptions{}, map[time.Duration]time.Duration{
			time.Second: time.Second, 3 * time.Second: 3 * time.Second,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startEtcd(t, tc.opts)
			ctx := testCtx(t)
			b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}})
			raw := rawClient(t, srv.addr)
			for asked, want := range tc.ttls {
				s := openSession(t, b, asked)
				if s.TTL() != want {
					t.Errorf("OpenSession(%v).TTL() = %v, want %v", asked, s.TTL(), want)
				}
				// What the server says about the lease of a claim.
				name := "ttl-" + asked.String()
				claim(t, s, name, "a")
				resp, err := raw.Get(ctx, "electionkit/"+name+"%00", clientv3.WithPrefix())
				if err != nil || len(resp.Kvs) != 1 {
					t.Fatalf("raw Get: %v", err)
				}
				ttl, err := raw.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
				if err != nil {
					t.Fatal(err)
				}
				if got := time.Duration(ttl.GrantedTTL) * time.Second; got != s.TTL() {
					t.Errorf("asked %v: session reports %v, etcd's lease has %v", asked, s.TTL(), got)
				}
				t.Logf("asked %v, granted %v", asked, s.TTL())
			}
		})
	}
}

// TestTTLRejected: TTLs etcd cannot grant as asked are errors wrapping
// ErrInvalidArgument, never rounded; Limits says the same.
func TestTTLRejected(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}})
	lim := b.Limits()
	if lim.MinTTL != time.Second || lim.MaxTTL < time.Hour {
		t.Fatalf("Limits = %+v, want MinTTL 1s and a large MaxTTL", lim)
	}
	for _, ttl := range []time.Duration{0, -time.Second, 999 * time.Millisecond, 1500 * time.Millisecond, time.Second + time.Nanosecond, lim.MaxTTL + time.Second} {
		s, err := b.OpenSession(testCtx(t), ttl)
		if err == nil {
			s.Close(testCtx(t))
			t.Errorf("OpenSession(%v) succeeded", ttl)
			continue
		}
		if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "ttl") {
			t.Errorf("OpenSession(%v) = %v, want ErrInvalidArgument naming ttl", ttl, err)
		}
	}
	_, err := b.OpenSession(testCtx(t), 1500*time.Millisecond)
	if !strings.Contains(err.Error(), "whole number of seconds") {
		t.Errorf("1.5s rejected as %q, want it to say why", err)
	}
}
