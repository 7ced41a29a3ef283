package redis

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
)

// MaxTTL is the longest TTL a session accepts: a year, far beyond any sane
// lease, which keeps the scripts' microsecond arithmetic exact in Lua
// doubles.
const MaxTTL = 365 * 24 * time.Hour

var _ election.Backend = (*Backend)(nil)

// Backend is an [election.Backend] on a Redis server, Sentinel-managed
// primary or Cluster. It is safe for concurrent use. All watchers of one
// Backend share one pub/sub connection.
type Backend struct {
	client     goredis.UniversalClient
	ownsClient bool
	cfg        Config
	// singlePrimary: one script may touch keys of many elections.
	singlePrimary bool

	mu       sync.Mutex
	closed   bool
	closing  chan struct{}  // closed by Close; stops watchers
	hub      *hub           // the shared subscription; nil until a Watch needs it or after it broke
	watchers sync.WaitGroup // watcher goroutines
	loops    sync.WaitGroup // hub receive loops, also of hubs that failed
}

// New returns a Backend that uses client, which may be a single-node,
// Sentinel failover or Cluster client (*redis.Ring is refused: its shards
// share no pub/sub). The caller owns client: [Backend.Close] leaves it open.
// Give client go-redis's ContextTimeoutEnabled option: the core bounds every
// call with a context deadline, which go-redis otherwise ignores. New does
// no I/O. It returns an error wrapping [election.ErrInvalidArgument]
// that lists every problem of cfg at once.
func New(client goredis.UniversalClient, cfg Config) (*Backend, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(client); err != nil {
		return nil, err
	}
	return &Backend{
		client:        client,
		cfg:           cfg,
		singlePrimary: isSinglePrimary(client),
		closing:       make(chan struct{}),
	}, nil
}

// Close stops every watch (each gets a last event with an error wrapping
// [election.ErrUnavailable] if its reader is waiting, then its channel
// closes) and the shared subscription, and closes the client if the Backend
// was opened by [OpenURL]. It waits for the Backend's goroutines to end.
// Sessions keep working only as long as the client stays open. Close is
// idempotent; it returns the client's close error.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.closing)
	h := b.hub
	b.hub = nil
	b.mu.Unlock()

	if h != nil {
		h.fail(errClosed)
	}
	b.loops.Wait()
	b.watchers.Wait()
	if b.ownsClient {
		return b.client.Close()
	}
	return nil
}

// Limits reports what the Backend accepts: TTLs from 1ms to [MaxTTL] in
// whole milliseconds (PX granularity), names up to the core's default
// length. Any name the core accepts can be stored.
func (b *Backend) Limits() election.Limits {
	return election.Limits{MinTTL: time.Millisecond, MaxTTL: MaxTTL}
}

// OpenSession checks that the server answers (PING) and returns a session
// that claims with ttl. Redis has no server-side session: claims expire on
// their own, and the session only remembers the TTL. A ttl below 1ms, above
// [MaxTTL] or not a whole number of milliseconds is refused with
// [election.ErrInvalidArgument], never rounded; an unreachable server gives
// [election.ErrUnavailable]; rejected credentials give
// [election.ErrInvalidArgument].
func (b *Backend) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	switch {
	case ttl < time.Millisecond:
		return nil, invalid("ttl", "%v is below the minimum of 1ms", ttl)
	case ttl > MaxTTL:
		return nil, invalid("ttl", "%v is above the maximum of %v", ttl, MaxTTL)
	case ttl%time.Millisecond != 0:
		return nil, invalid("ttl", "%v is not a whole number of milliseconds", ttl)
	}
	if err := b.client.Ping(ctx).Err(); err != nil {
		return nil, storeError("open session", "", err)
	}
	return &session{backend: b, ttl: ttl}, nil
}

// Leader reads the current holder of name. It returns
// [election.ErrNoLeader] when the election is vacant (also during a
// quarantine) and an error wrapping [election.ErrUnavailable] when the
// server cannot be reached.
func (b *Backend) Leader(ctx context.Context, name string) (election.Leader, error) {
	st, err := b.read(ctx, name)
	if err != nil {
		return election.Leader{}, err
	}
	if st.leader == nil {
		return election.Leader{}, election.ErrNoLeader
	}
	return *st.leader, nil
}

// state is one atomic read of an election.
type state struct {
	leader    *election.Leader // nil when vacant
	expiresIn time.Duration    // the holder's PTTL
	version   uint64           // see claimVersion
}

// read reads the election name in one script.
func (b *Backend) read(ctx context.Context, name string) (state, error) {
	k := keysFor(b.cfg.Prefix, name)
	reply, err := readScript.Run(ctx, b.client, []string{k.leader, k.meta}).Slice()
	if err != nil {
		return state{}, storeError("read", name, err)
	}
	if len(reply) != 3 {
		return state{}, storeError("read", name, errors.New("unexpected reply from read script"))
	}
	value, _ := reply[0].(string)
	ms, _ := reply[1].(int64)
	lastFence, _ := reply[2].(string)
	if value == "" {
		var st state
		if lastFence != "" {
			last, err := strconv.ParseUint(lastFence, 10, 64)
			if err != nil {
				return state{}, storeError("read", name, err)
			}
			st.version = releaseVersion(last)
		}
		return st, nil
	}
	rec, err := decodeRecord(name, value)
	if err != nil {
		return state{}, storeError("read", name, err)
	}
	l := rec.leader(name)
	return state{leader: &l, expiresIn: pttl(ms), version: claimVersion(rec.Fence)}, nil
}
