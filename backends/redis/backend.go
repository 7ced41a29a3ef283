package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/recordfmt"
)

// MaxTTL is the longest TTL a session accepts: a year, far beyond any sane
// lease, which keeps the scripts' microsecond arithmetic exact in Lua
// doubles.
const MaxTTL = 365 * 24 * time.Hour

var _ election.Backend = (*Backend)(nil)

// Backend is an [election.Backend] on a Redis server, Sentinel-managed
// primary or Cluster. It is safe for concurrent use. A Backend holds one
// pub/sub subscription, to its prefix's one channel, shared by every watch
// and session.
type Backend struct {
	client     goredis.UniversalClient
	ownsClient bool
	cfg        Config
	keys       keys

	// fenceFloor is the highest fence this Backend has seen, in any
	// election of its prefix: every claim's fence is above it, even when
	// the store lost the fences it handed out and its clock is behind
	// them (see fence.go).
	fenceFloor atomic.Uint64

	mu      sync.Mutex
	closed  bool
	closing chan struct{}  // closed by Close
	hub     *hub           // started by the first OpenSession or Watch
	loops   sync.WaitGroup // the hub's goroutines
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
		client:  client,
		cfg:     cfg,
		keys:    keysFor(cfg.Prefix),
		closing: make(chan struct{}),
	}, nil
}

// Close stops every watch (each gets a last event with an error wrapping
// [election.ErrUnavailable], then its channel closes) and the shared
// subscription, and closes the client if the Backend was opened by
// [OpenURL]. It waits for the Backend's goroutines to end. Sessions keep
// working only as long as the client stays open. Close is idempotent; it
// returns the client's close error.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.closing)
	h := b.hub
	b.mu.Unlock()

	if h != nil {
		h.close()
	}
	b.loops.Wait()
	if b.ownsClient {
		return b.client.Close()
	}
	return nil
}

// currentHub returns the shared subscription, starting it on first use.
func (b *Backend) currentHub() (*hub, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	if b.hub == nil {
		b.hub = newHub(b)
	}
	return b.hub, nil
}

// Limits reports what the Backend accepts: TTLs from 1ms to [MaxTTL] in
// whole milliseconds (PX granularity), names up to the core's default
// length. Any name the core accepts can be stored.
func (b *Backend) Limits() election.Limits {
	return election.Limits{MinTTL: time.Millisecond, MaxTTL: MaxTTL}
}

// OpenSession creates the session's key with a PX expiry of ttl: every
// claim made through the session is valid only while that key exists, and
// Renew extends it. A ttl below 1ms, above [MaxTTL] or not a whole number
// of milliseconds is refused with [election.ErrInvalidArgument], never
// rounded; an unreachable server gives [election.ErrUnavailable]; rejected
// credentials give [election.ErrInvalidArgument].
func (b *Backend) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	switch {
	case ttl < time.Millisecond:
		return nil, invalid("ttl", "%v is below the minimum of 1ms", ttl)
	case ttl > MaxTTL:
		return nil, invalid("ttl", "%v is above the maximum of %v", ttl, MaxTTL)
	case ttl%time.Millisecond != 0:
		return nil, invalid("ttl", "%v is not a whole number of milliseconds", ttl)
	}
	h, err := b.currentHub()
	if err != nil {
		return nil, storeError("open session", "", err)
	}
	id := newSessionID()
	created, err := b.client.SetNX(ctx, b.keys.session(id), encodeSession(ttl.Milliseconds()), ttl).Result()
	if err != nil {
		return nil, storeError("open session", "", err)
	}
	if !created { // 128 random bits met an existing session: never expected
		return nil, storeError("open session", "", errors.New("session ID already in use"))
	}
	return &session{backend: b, hub: h, id: id, key: b.keys.session(id), ttl: ttl}, nil
}

// Leader reads the current holder of name. It returns
// [election.ErrNoLeader] when the election is vacant (also during a
// quarantine), an error naming the key when it holds a value that is not
// an election record (the election is then held by an unknown writer,
// never vacant), and an error wrapping [election.ErrUnavailable] when the
// server cannot be reached.
func (b *Backend) Leader(ctx context.Context, name string) (election.Leader, error) {
	st, err := b.read(ctx, name)
	if err != nil {
		return election.Leader{}, err
	}
	if st.foreign != nil {
		return election.Leader{}, storeError("leader", name, st.foreign)
	}
	if st.leader == nil {
		return election.Leader{}, election.ErrNoLeader
	}
	return *st.leader, nil
}

// state is one atomic read of an election, or what an announcement says.
type state struct {
	leader *election.Leader // nil when vacant or held by an unknown writer
	// holder is the holder's session ID, "" when vacant.
	holder string
	// holderTTL is how long the holder's session is known to live: 0 when
	// unknown, negative when its key has no expiry.
	holderTTL time.Duration
	version   uint64 // see claimVersion
	// foreign is set when the claim key holds a value that is not an
	// election record: held by an unknown writer.
	foreign error
}

// event is st as a watch event. Redis pushes no expiry, but the hub
// reports it (holders.go), so ExpiresIn stays zero and the core does not
// watch again. An election held by an unknown writer shows a Leader with
// only the election's name.
func (st state) event(name string) election.WatchEvent {
	switch {
	case st.leader != nil:
		l := *st.leader // one copy per event; Metadata is read-only
		return election.WatchEvent{Leader: &l}
	case st.foreign != nil:
		return election.WatchEvent{Leader: &election.Leader{Election: name}}
	default:
		return election.WatchEvent{}
	}
}

// read reads the election name in one script.
func (b *Backend) read(ctx context.Context, name string) (state, error) {
	states, err := b.readMany(ctx, []string{name})
	if err != nil {
		return state{}, storeError("read", name, err)
	}
	return states[0], nil
}

// readMany reads elections, up to maxKeysPerScript per script, all in one
// pipeline.
func (b *Backend) readMany(ctx context.Context, names []string) ([]state, error) {
	if len(names) == 0 {
		return nil, nil
	}
	run := func(useSHA bool) ([]*goredis.Cmd, error) {
		pipe := b.client.Pipeline()
		var cmds []*goredis.Cmd
		for start := 0; start < len(names); start += maxKeysPerScript {
			batch := names[start:min(start+maxKeysPerScript, len(names))]
			keys := make([]string, 0, len(batch)+1)
			args := make([]any, 0, len(batch)+1)
			keys = append(keys, b.keys.fences)
			args = append(args, b.keys.sessionPrefix)
			for _, name := range batch {
				keys = append(keys, b.keys.claim(name))
				args = append(args, name)
			}
			if useSHA {
				cmds = append(cmds, readScript.EvalSha(ctx, pipe, keys, args...))
			} else {
				cmds = append(cmds, readScript.Eval(ctx, pipe, keys, args...))
			}
		}
		_, _ = pipe.Exec(ctx) // errors are on the commands
		for _, cmd := range cmds {
			if err := cmd.Err(); err != nil {
				return nil, err
			}
		}
		return cmds, nil
	}
	cmds, err := run(true)
	if isNoScript(err) {
		cmds, err = run(false)
	}
	if err != nil {
		return nil, err
	}
	states := make([]state, 0, len(names))
	for _, cmd := range cmds {
		fields, err := cmd.Slice()
		if err != nil {
			return nil, err
		}
		for i := 0; i+2 < len(fields); i += 3 {
			name := names[len(states)]
			st, err := b.parseRead(name, fields[i:i+3])
			if err != nil {
				return nil, err
			}
			states = append(states, st)
		}
	}
	if len(states) != len(names) {
		return nil, fmt.Errorf("redis: read script returned %d states for %d elections", len(states), len(names))
	}
	return states, nil
}

// parseRead turns one election's entries of the read script into a state.
func (b *Backend) parseRead(name string, f []any) (state, error) {
	kind, _ := f[0].(string)
	switch kind {
	case "held":
		value, _ := f[1].(string)
		ms, _ := f[2].(int64)
		rec, err := decodeClaim(name, b.keys.claim(name), value)
		if err != nil {
			return state{foreign: err, version: claimVersion(rec.Fence)}, nil
		}
		b.noteFence(rec.Fence)
		l := rec.leader(name)
		alive := time.Duration(ms)*time.Millisecond + time.Millisecond // PTTL 0: expires within the millisecond
		if ms < 0 {
			alive = -1
		}
		return state{leader: &l, holder: rec.Session, holderTTL: alive, version: claimVersion(rec.Fence)}, nil
	case "vacant", "foreign":
		var last uint64
		if s, ok := f[1].(string); ok {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return state{}, fmt.Errorf("redis: election %q: last fence: %w", name, err)
			}
			last = n
			b.noteFence(n)
		}
		st := state{version: endVersion(last)}
		if kind == "foreign" {
			st.foreign = fmt.Errorf("redis: election %q: key %q: %w: not a claim record", name, b.keys.claim(name), recordfmt.ErrNotARecord)
		}
		return st, nil
	default:
		return state{}, fmt.Errorf("redis: unexpected reply %q from read script", kind)
	}
}
