package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/electionkit/election"
)

var _ election.Backend = (*Backend)(nil)

// Backend is an [election.Backend] on an etcd v3 cluster. It is safe for
// concurrent use. Close it with [Backend.Close] (or election.CloseBackend)
// to release the connections it owns.
type Backend struct {
	client     *clientv3.Client
	ownsClient bool
	prefix     string

	// dialTimeout bounds the wait for the shared watch in Watch.
	dialTimeout time.Duration
	// hub is the one watch of the prefix, shared by every Watch and
	// session.
	hub *hub
	// guard notices a cluster whose revision went backwards.
	guard revisionGuard

	closeOnce sync.Once
	closeErr  error
	// closed is closed by Close; life is cancelled with it, ending the
	// shared watch.
	closed  chan struct{}
	life    context.Context
	endLife context.CancelFunc
}

// New connects to etcd as cfg says and checks, within cfg.DialTimeout, that
// the cluster answers a linearizable read under the prefix; with cfg.Lazy
// it does no I/O.
//
// Errors: every problem with cfg at once (errors.Join), each wrapping
// election.ErrInvalidArgument and naming its field; ErrInvalidArgument for
// credentials or a TLS setup the server rejects; election.ErrUnavailable
// when no endpoint answers within the dial timeout. On error nothing is left
// open (a caller-supplied Client is never closed).
func New(cfg Config) (*Backend, error) {
	return open(context.Background(), cfg)
}

func open(ctx context.Context, cfg Config) (*Backend, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.dialTimeout)
	defer cancel()

	b := &Backend{client: s.client, prefix: s.prefix, dialTimeout: s.dialTimeout, closed: make(chan struct{})}
	b.life, b.endLife = context.WithCancel(context.Background())
	b.hub = newHub(b)
	var diag *connErrors
	if b.client == nil {
		diag = &connErrors{}
		b.client, err = clientv3.New(clientv3.Config{
			Endpoints:   s.endpoints,
			DialTimeout: s.dialTimeout,
			// Detect a dead connection (a cut network) on idle watches.
			// etcd rejects pings more often than every 5s by default.
			DialKeepAliveTime:    5 * time.Second,
			DialKeepAliveTimeout: 3 * time.Second,
			TLS:                  s.tls,
			Username:             s.username,
			Password:             s.password,
			Logger:               zap.NewNop(),
			DialOptions: []grpc.DialOption{
				diag.interceptor(),
				grpc.WithConnectParams(reconnectParams(s.dialTimeout)),
			},
		})
		if err != nil {
			return nil, diag.explain(where(s), err)
		}
		b.ownsClient = true
	}
	if s.lazy {
		return b, nil
	}
	if err := b.probe(ctx); err != nil {
		if b.ownsClient {
			_ = b.client.Close()
		}
		b.endLife()
		return nil, diag.explain(where(s), err)
	}
	return b, nil
}

// reconnectParams replaces gRPC's default reconnect backoff (1s growing to
// 120s), which after a few failed attempts during a store restart or
// partition would leave a client disconnected for longer than any
// sensible TTL once the store is back. Attempts are retried within a
// second instead; each one may take up to the dial timeout.
func reconnectParams(dialTimeout time.Duration) grpc.ConnectParams {
	return grpc.ConnectParams{
		Backoff: backoff.Config{
			BaseDelay:  100 * time.Millisecond,
			Multiplier: 1.6,
			Jitter:     0.2,
			MaxDelay:   time.Second,
		},
		MinConnectTimeout: dialTimeout,
	}
}

// probe reads the prefix's own key: it proves that a quorum answers and that
// the credentials may read under the prefix.
func (b *Backend) probe(ctx context.Context) error {
	resp, err := b.client.Get(ctx, b.prefix+"/", clientv3.WithCountOnly())
	if err == nil {
		b.guard.observe(resp.Header)
	}
	return err
}

// where names what New connects to, for its errors.
func where(s settings) string {
	if s.client != nil {
		return "the supplied client"
	}
	return strings.Join(s.endpoints, ",")
}

// Close closes the etcd client if the Backend created it, and stops the
// shared watch: every channel of [Backend.Watch] gets an error event and is
// closed. Sessions are not revoked (close them first):
// their leases expire after their TTL. Every operation after Close, on the
// Backend or its sessions, fails at once with election.ErrUnavailable.
// Close is idempotent; it returns the client's close error.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		close(b.closed)
		b.endLife()
		b.hub.wait()
		if b.ownsClient {
			b.closeErr = b.client.Close()
		}
	})
	return b.closeErr
}

// Limits reports etcd's limits: TTLs are whole seconds from 1s (etcd may
// grant more, see [election.Session.TTL]) up to etcd's maximum lease TTL.
func (b *Backend) Limits() election.Limits {
	return election.Limits{
		MinTTL:         time.Second,
		MaxTTL:         maxLeaseTTL,
		MaxNameLen:     1024,
		TTLGranularity: time.Second,
	}
}

// maxLeaseTTL is etcd's lease.MaxLeaseTTL (9e9 seconds).
const maxLeaseTTL = 9_000_000_000 * time.Second

// Leader reads the current holder of the election name, its entry with the
// lowest create revision, with one linearizable read. It returns an error
// wrapping election.ErrNoLeader when the election is vacant and
// election.ErrUnavailable when the cluster does not answer.
func (b *Backend) Leader(ctx context.Context, name string) (election.Leader, error) {
	if err := b.errIfClosed("leader", name); err != nil {
		return election.Leader{}, err
	}
	resp, err := b.client.Get(ctx, b.rangeOf(name), clientv3.WithFirstCreate()...)
	if err != nil {
		return election.Leader{}, storeError("leader", name, err)
	}
	b.guard.observe(resp.Header)
	if len(resp.Kvs) == 0 {
		return election.Leader{}, fmt.Errorf("etcd: leader %q: %w", name, election.ErrNoLeader)
	}
	l, err := leaderOf(name, resp.Kvs[0])
	if err != nil {
		// Held by an unknown writer: never reported as vacant.
		return election.Leader{}, fmt.Errorf("etcd: leader %q: held by an unknown writer: %w", name, err)
	}
	return l, nil
}

// rangeOf returns the key prefix of election name's entries.
func (b *Backend) rangeOf(name string) string { return entryRange(b.prefix, name) }

// errIfClosed fails an operation on a closed Backend at once: the etcd
// client would otherwise retry on its closed connection until the
// operation's deadline.
func (b *Backend) errIfClosed(op, name string) error {
	select {
	case <-b.closed:
		return storeError(op, name, errBackendClosed)
	default:
		return nil
	}
}

var errBackendClosed = errors.New("backend closed")
