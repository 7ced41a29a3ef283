package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/electionkit/election"
)

// MaxTTL is the longest TTL a session accepts: a year.
const MaxTTL = 365 * 24 * time.Hour

var (
	_ election.Backend  = (*Backend)(nil)
	_ election.Notifier = (*Backend)(nil)
)

// Backend is an [election.Backend] on a Postgres database. It is safe for
// concurrent use. It holds a connection pool for claims, releases and
// reads, one connection of its own for renewals (so that a busy pool
// cannot delay them), and one listening connection, shared by every watch,
// on its prefix's one NOTIFY channel.
type Backend struct {
	pool  *pgxpool.Pool
	cfg   Config
	names tableNames
	sql   statements

	renewConfig *pgx.ConnConfig
	renewMu     sync.Mutex // one renewal at a time on renewConn
	renewConn   *pgx.Conn  // nil until the first renewal, or after a failed one

	hub *hub

	readyMu sync.Mutex  // one first contact at a time (ready)
	isReady atomic.Bool // the tables are there and the hub listens

	closeOnce sync.Once
	closeErr  error
}

// Open opens a Backend on the database connString names (a postgres:// URL
// or key=value string, as pgx parses it: host, port, user, password,
// database, sslmode and the other TLS settings, connect_timeout,
// pool_max_conns, ...). It creates the tables unless cfg.NoCreate, opens
// the listening connection and checks that a NOTIFY sent through the pool
// reaches it (see Config.ListenConnString); it fails with an error wrapping
// [election.ErrInvalidArgument] for a bad connection string, Config,
// credentials or missing tables, and [election.ErrUnavailable] when the
// server cannot be reached. Errors never show the password. With
// cfg.Lazy, Open only parses and validates: the first OpenSession, Leader,
// Watch or Notify contacts the server and returns those errors.
//
// Statements are sent in pgx's exec mode (one round trip, no named
// prepared statement) unless the connection string asks for
// default_query_exec_mode=simple_protocol; no session state is kept on
// pooled connections, so the pool may be a transaction-mode PgBouncer.
func Open(ctx context.Context, connString string, cfg Config) (*Backend, error) {
	cfg = cfg.withDefaults()
	errs := []error{cfg.validate()}
	poolConfig, err := pgxpool.ParseConfig(connString)
	if err != nil {
		errs = append(errs, invalid("connection string", "%s", parseProblem(err)))
	}
	var listenConfig *pgx.ConnConfig
	if cfg.ListenConnString != "" {
		listenConfig, err = pgx.ParseConfig(cfg.ListenConnString)
		if err != nil {
			errs = append(errs, invalid("ListenConnString", "%s", parseProblem(err)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if listenConfig == nil {
		listenConfig = poolConfig.ConnConfig.Copy() // without the pool's own parameters
	}
	if poolConfig.ConnConfig.DefaultQueryExecMode != pgx.QueryExecModeSimpleProtocol {
		poolConfig.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	listenConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	pool, err := pgxpool.NewWithConfig(ctx, poolConfig)
	if err != nil {
		return nil, invalid("connection string", "%v", err)
	}
	b := &Backend{
		pool:        pool,
		cfg:         cfg,
		names:       names(cfg),
		sql:         statementsFor(names(cfg)),
		renewConfig: poolConfig.ConnConfig.Copy(),
	}
	b.hub = newHub(b, listenConfig)
	if cfg.Lazy {
		return b, nil
	}
	if err := b.ready(ctx); err != nil {
		b.hub.close()
		pool.Close()
		return nil, err
	}
	return b, nil
}

// ready makes the Backend's first contact with the server, once: it
// creates or checks the tables (ensureSchema), connects the listening
// connection and checks it with a NOTIFY of its own. Open calls it, or,
// with Config.Lazy, the first OpenSession, Leader, Watch or Notify; a
// failure is returned to that call and the next one tries again.
func (b *Backend) ready(ctx context.Context) error {
	if b.isReady.Load() {
		return nil
	}
	b.readyMu.Lock()
	defer b.readyMu.Unlock()
	switch {
	case b.isReady.Load():
		return nil
	case b.hub.isClosed():
		return storeError("open", "", errClosed)
	}
	if err := b.ensureSchema(ctx); err != nil {
		return err
	}
	if err := b.hub.start(ctx); err != nil {
		return err
	}
	b.isReady.Store(true)
	return nil
}

// Close stops every watch (each gets a last event with an error wrapping
// [election.ErrUnavailable]), closes the listening and renewal connections
// and the pool, and waits for the Backend's goroutines. Sessions stop
// working; their rows expire at their TTL. Close is idempotent.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.hub.close()
		b.renewMu.Lock()
		if b.renewConn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			b.closeErr = b.renewConn.Close(ctx)
			cancel()
			b.renewConn = nil
		}
		b.renewMu.Unlock()
		b.pool.Close()
	})
	return b.closeErr
}

// Limits reports what the Backend accepts: TTLs from 1ms to [MaxTTL] in
// whole microseconds (timestamptz's precision), names up to the core's
// default length.
func (b *Backend) Limits() election.Limits {
	return election.Limits{MinTTL: time.Millisecond, MaxTTL: MaxTTL, TTLGranularity: time.Microsecond}
}

// OpenSession inserts the session's row with an expiry of the server's
// clock_timestamp() plus ttl. A ttl below 1ms, above [MaxTTL] or not a
// whole number of microseconds is refused with
// [election.ErrInvalidArgument]; an unreachable server gives
// [election.ErrUnavailable].
func (b *Backend) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	switch {
	case ttl < time.Millisecond:
		return nil, invalid("ttl", "%v is below the minimum of 1ms", ttl)
	case ttl > MaxTTL:
		return nil, invalid("ttl", "%v is above the maximum of %v", ttl, MaxTTL)
	case ttl%time.Microsecond != 0:
		return nil, invalid("ttl", "%v is not a whole number of microseconds", ttl)
	}
	if b.hub.isClosed() {
		return nil, storeError("open session", "", errClosed)
	}
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	id := newSessionID()
	if _, err := b.pool.Exec(ctx, b.sql.openSession, id, ttl.Microseconds()); err != nil {
		return nil, storeError("open session", "", err)
	}
	return &session{backend: b, id: id, ttl: ttl}, nil
}

// Leader reads the current holder of name: [election.ErrNoLeader] when the
// election is vacant or its holder's session has expired (by the server's
// clock), an error wrapping [election.ErrUnavailable] when the server
// cannot be reached.
func (b *Backend) Leader(ctx context.Context, name string) (election.Leader, error) {
	if err := b.ready(ctx); err != nil {
		return election.Leader{}, err
	}
	st, err := b.read(ctx, name)
	if err != nil {
		return election.Leader{}, err
	}
	if st.leader == nil {
		return election.Leader{}, election.ErrNoLeader
	}
	return *st.leader, nil
}

// state is one read of an election.
type state struct {
	leader *election.Leader // nil when vacant
	// left is the holder session's remaining TTL by the server's clock
	// when it was read; readAt is when (local clock).
	left   time.Duration
	readAt time.Time
	// version orders states of one election: 3×fence while held, +1 when
	// the holder's session has expired, +2 once released.
	version uint64
	// due: the holder is not alive and claims wait in line; a settle
	// promotes the first live one.
	due bool
	// holder is the holder's session ID while held (the hub keeps one
	// timer per holder session: holders.go).
	holder string
}

// event is st as a watch event. It carries no ExpiresIn: the hub reports
// the holder's expiry itself (holders.go), so the core needs no timer per
// election.
func (st state) event() election.WatchEvent {
	if st.leader == nil {
		return election.WatchEvent{}
	}
	l := *st.leader
	return election.WatchEvent{Leader: &l}
}

// expiresIn is the holder's remaining TTL as st read it, from now, at
// least 1ms: when to look again.
func (st state) expiresIn() time.Duration {
	return max(st.left-time.Since(st.readAt), time.Millisecond)
}

// read reads one election.
func (b *Backend) read(ctx context.Context, name string) (state, error) {
	states, err := b.readMany(ctx, []string{name})
	if err != nil {
		return state{}, storeError("read", name, err)
	}
	return states[name], nil
}

// readMany reads elections in one statement. Names without a row are
// vacant at version 0. An election whose holder is not alive while claims
// wait in line above its fence is settled first (line.go), in a second
// round trip, so that a read never shows it vacant while a live claim
// waits: the first reader after the holder's expiry promotes the next
// claim in line.
func (b *Backend) readMany(ctx context.Context, names []string) (map[string]state, error) {
	readAt := time.Now()
	rows, err := b.pool.Query(ctx, b.sql.read, names)
	if err != nil {
		return nil, err
	}
	out, due, err := scanStates(rows, names, readAt)
	rows.Close()
	if err != nil {
		return nil, err
	}
	// A settle that met a session expiring under it leaves the election
	// due; the next one judges it.
	for attempt := 0; len(due) > 0 && attempt < 3; attempt++ {
		settled, err := b.settleNames(ctx, due)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			// A role that may only read (an observer's) cannot promote:
			// it sees the election as the plain read found it, vacant,
			// until a candidate's statement settles it.
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		due = due[:0]
		for name, st := range settled {
			out[name] = st
			if st.due {
				due = append(due, name)
			}
		}
	}
	return out, nil
}

// scanStates reads the rows of the read statement: the states of names,
// and the names that are due a settle.
func scanStates(rows pgx.Rows, names []string, readAt time.Time) (map[string]state, []string, error) {
	defer rows.Close()
	out := make(map[string]state, len(names))
	for _, n := range names {
		out[n] = state{readAt: readAt}
	}
	var due []string
	for rows.Next() {
		var (
			name, session, holder, metadata *string
			fence, leftMicros               int64
			alive, waiting                  bool
		)
		if err := rows.Scan(&name, &fence, &session, &holder, &metadata, &alive, &leftMicros, &waiting); err != nil {
			return nil, nil, err
		}
		if name == nil {
			continue
		}
		st := state{readAt: readAt, version: 3*uint64(fence) + 2, due: waiting && !alive}
		switch {
		case session == nil: // released
		case !alive:
			st.version = 3*uint64(fence) + 1
		default:
			l := election.Leader{Election: *name, Fence: uint64(fence)}
			if holder != nil {
				l.ID = *holder
			}
			if metadata != nil {
				md, err := decodeMetadata(*metadata)
				if err != nil {
					return nil, nil, fmt.Errorf("election %q: metadata: %w", *name, err)
				}
				l.Metadata = md
			}
			st.leader = &l
			st.holder = *session
			st.version = 3 * uint64(fence)
			st.left = time.Duration(leftMicros) * time.Microsecond
		}
		if st.due {
			due = append(due, *name)
		}
		out[*name] = st
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return out, due, nil
}

// parseProblem is what is wrong with a connection string pgx could not
// parse, without the string: pgx's error quotes it with the password
// masked as best it can, and a malformed string can defeat the masking.
func parseProblem(err error) string {
	var pce *pgconn.ParseConfigError
	if !errors.As(err, &pce) {
		return err.Error()
	}
	msg := pce.Error()
	if i := strings.Index(msg, "`: "); i >= 0 {
		return "cannot parse it: " + msg[i+3:]
	}
	return "cannot parse it"
}

// newSessionID returns 128 random bits in hex.
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// tokenHash is what the claims table keeps of an owner token: its SHA-256,
// so that read access to the table does not give the power to release.
func tokenHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}
