package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	goredis "github.com/redis/go-redis/v9"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/electionkit/election/internal/teststore"
)

// The servers are the backends' own test servers (internal/teststore): real
// processes from bin/ or Debian, on random loopback ports, in temporary
// directories, killed when the benchmark ends. etcd runs with a 500ms
// election timeout, so its minimum lease TTL is 1s and crash takeovers can
// use 1s TTLs.

// consulMinTTL is the session_ttl_min the Consul agent runs with. Consul
// accepts any value there; 1s is the TTL every store uses for the crash
// scenario (etcd cannot go lower).
const consulMinTTL = teststore.DefaultConsulMinTTL

// store is one running server and the benchmark's own direct clients of it:
// for the renewals a crash injects on a peer's behalf and for the observer.
type store struct {
	kind   string // "etcd", "redis", "consul" or "postgres"
	addr   string
	etcd   *clientv3.Client
	redis  *goredis.Client
	consul *api.Client
}

// newStore starts a server of kind and opens the direct client. Everything
// is closed when tb ends.
func newStore(tb testing.TB, kind string) *store {
	tb.Helper()
	st := &store{kind: kind}
	switch kind {
	case "etcd":
		st.addr = teststore.StartEtcd(tb, teststore.EtcdOptions{}).Addr
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{st.addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = c.Close() })
		st.etcd = c
	case "redis":
		st.addr = teststore.StartRedis(tb, teststore.RedisOptions{}).Addr
		c := goredis.NewClient(&goredis.Options{Addr: st.addr, ContextTimeoutEnabled: true})
		tb.Cleanup(func() { _ = c.Close() })
		st.redis = c
	case "consul":
		st.addr = teststore.StartConsul(tb, teststore.ConsulOptions{MinTTL: consulMinTTL}).Addr
		c, transport, err := consulClient(st.addr)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(transport.CloseIdleConnections)
		st.consul = c
	case "postgres":
		st.addr = teststore.StartPostgres(tb, teststore.PostgresOptions{}).Addr
	default:
		tb.Fatalf("unknown store %q", kind)
	}
	return st
}

// watchDrop starts an observer of election that reports when the store
// drops its holder without a release: on etcd, the first deletion of any
// key (the election is fresh, and the holder's key is the only one that
// goes); on Consul, the holder's session leaving the election's key. It
// returns once the observer is established, and a nil channel on Redis,
// which announces no expiry.
func (st *store) watchDrop(ctx context.Context, lib library, election string) (<-chan time.Time, error) {
	out := make(chan time.Time, 1)
	switch st.kind {
	case "etcd":
		wch := st.etcd.Watch(ctx, "", clientv3.WithPrefix(), clientv3.WithFilterPut(), clientv3.WithCreatedNotify())
		first, ok := <-wch
		if !ok || !first.Created {
			return nil, fmt.Errorf("etcd watch not created: %v", first.Err())
		}
		go func() {
			for wr := range wch {
				for _, ev := range wr.Events {
					if ev.Type == mvccpb.DELETE {
						out <- time.Now()
						return
					}
				}
			}
		}()
		return out, nil
	case "consul":
		if lib.key == nil {
			return nil, fmt.Errorf("%s: no key function for the Consul observer", lib.name)
		}
		key := lib.key(election)
		kv := st.consul.KV()
		pair, meta, err := kv.Get(key, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return nil, err
		}
		if pair == nil || pair.Session == "" {
			return nil, fmt.Errorf("consul key %q is not held", key)
		}
		go func() {
			index := meta.LastIndex
			for ctx.Err() == nil {
				q := (&api.QueryOptions{WaitIndex: index, WaitTime: 30 * time.Second}).WithContext(ctx)
				pair, meta, err := kv.Get(key, q)
				if err != nil {
					_ = sleepCtx(ctx, 10*time.Millisecond)
					continue
				}
				if pair == nil || pair.Session == "" {
					out <- time.Now()
					return
				}
				index = meta.LastIndex
			}
		}()
		return out, nil
	default:
		return nil, nil
	}
}
