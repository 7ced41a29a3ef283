package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/electionkit/election/internal/faultproxy"
)

// The two patterns Postgres users rely on today for leader election, as
// baselines for our backend on the same server. Neither is a Go module
// served here, so both are written in this file from their documented
// algorithms:
//
//   - advisory: a session advisory lock, taken with pg_try_advisory_lock
//     retried at a fixed interval and given up with pg_advisory_unlock, on
//     one connection of its own (the lock lives as long as that session).
//   - pglock-design: the lease table of cirello.io/pglock (v1.16, client.go),
//     which the module proxy here does not serve. Its algorithm, kept as it
//     is: a table (name primary key, record_version_number, data, owner)
//     and a sequence of record version numbers (RVN). Acquire takes a new
//     RVN, then in one SERIALIZABLE transaction inserts the row or, on
//     conflict, updates it only if its RVN is NULL or equal to the RVN the
//     client last saw, and reads the row back FOR UPDATE: the lock is held
//     if the row has the new RVN; otherwise the client remembers the RVN it
//     read, waits one lease duration and tries again, so a holder is taken
//     over only after its RVN stayed unchanged for a whole lease as the
//     waiter saw it. The holder heartbeats (a new RVN, UPDATE … WHERE rvn =
//     the held one) at once and then every heartbeat interval; release sets
//     the RVN to NULL and deletes the row, in one transaction. A
//     serialization failure is retried after one heartbeat interval (its
//     retry of FailedPrecondition errors). Defaults: lease 20s, heartbeat
//     5s.
const (
	// advisoryRetry is the advisory lock's retry interval: redislock's
	// documented 100ms, so that the two polling baselines compare.
	advisoryRetry = 100 * time.Millisecond
	// pglockLease and pglockHeartbeat are cirello.io/pglock's
	// DefaultLeaseDuration and DefaultHeartbeatFrequency, used in the
	// handoff scenario.
	pglockLease     = 20 * time.Second
	pglockHeartbeat = 5 * time.Second
	// postgresCrashTTL is the TTL of the crash scenario: ours' session TTL
	// and pglock-design's lease duration (heartbeat every TTL/3, as the
	// Redis peers refresh; pglock requires at most half the lease).
	postgresCrashTTL = time.Second
	// pglockTable is the lease table of pglock-design (its sequence is
	// pglockTable_rvn, as pglock names it).
	pglockTable = "bench_pglock_locks"
)

// Sample counts of the Postgres benchmarks beyond -handoffs: a
// pglock-design waiter retries once per 20s lease, so each of its handoffs
// takes about 20s.
var (
	postgresCrashCount = flag.Int("postgres-crashes", 15, "crash takeovers per library in BenchmarkPostgresCrash")
	pglockHandoffCount = flag.Int("pglock-handoffs", 5,
		"graceful handoffs of pglock-design in BenchmarkPostgresHandoff (each takes about its 20s lease)")
)

// postgresURL is the URL of the test server at st.addr, or through link
// when it is not nil: the user postgres, the database postgres.
func postgresURL(st *store, link *faultproxy.Proxy) string {
	addr := st.addr
	if link != nil {
		addr = link.Addr()
	}
	q := url.Values{"sslmode": {"disable"}, "connect_timeout": {"10"}}
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: addr, Path: "/postgres", RawQuery: q.Encode()}
	return u.String()
}

// advisoryLibrary is a session advisory lock on the election's name
// (hashtextextended(name, 0) as the key), retried every advisoryRetry. A
// crash is the death of the holder's process: its connection closes
// without a word (no Terminate, no unlock), and the server frees the lock
// when it sees the connection end.
func advisoryLibrary() library {
	return library{
		name: "advisory",
		join: func(ctx context.Context, st *store, name, id string, link *faultproxy.Proxy) (participant, error) {
			conn, err := pgx.Connect(ctx, postgresURL(st, link))
			if err != nil {
				return nil, err
			}
			return &advisoryPeer{conn: conn, name: "bench:" + name}, nil
		},
	}
}

// advisoryPeer is one process holding or waiting for an advisory lock on
// its own connection. Calls on it are sequential (the scenarios never call
// one participant from two goroutines at once).
type advisoryPeer struct {
	conn *pgx.Conn
	name string
	held bool
}

var _ crasher = (*advisoryPeer)(nil)

func (p *advisoryPeer) acquire(ctx context.Context) (time.Time, error) {
	for {
		var ok bool
		if err := p.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, p.name).Scan(&ok); err != nil {
			return time.Time{}, err
		}
		if ok {
			p.held = true
			return time.Now(), nil
		}
		if err := sleepCtx(ctx, advisoryRetry); err != nil {
			return time.Time{}, err
		}
	}
}

func (p *advisoryPeer) release(ctx context.Context) error {
	if !p.held {
		return errors.New("release: not held")
	}
	p.held = false
	var ok bool
	if err := p.conn.QueryRow(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, p.name).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return errors.New("pg_advisory_unlock: the session did not hold the lock")
	}
	return nil
}

// crash closes the holder's socket under pgx, as the kernel does when the
// process dies: the server sees the connection end and frees the lock. The
// lock has no TTL: the earliest moment it can be free is the close itself,
// so lastRenewal is the close and ttl 0.
func (p *advisoryPeer) crash(ctx context.Context) (crashInfo, error) {
	if !p.held {
		return crashInfo{}, errors.New("crash: not holding")
	}
	p.held = false
	if err := p.conn.PgConn().Conn().Close(); err != nil {
		return crashInfo{}, err
	}
	at := time.Now()
	return crashInfo{cut: at, lastRenewal: at, ttl: 0}, nil
}

func (p *advisoryPeer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = p.conn.Close(ctx)
}

// pglockLibrary is the lease table of cirello.io/pglock (see the top of
// this file), each participant with its own pool. crash selects lease
// postgresCrashTTL and heartbeat TTL/3; otherwise pglock's defaults.
func pglockLibrary(crash bool) library {
	return library{
		name: "pglock-design",
		// In the handoff its default 20s lease makes each sample about 20s.
		handoffs: pglockHandoffCount,
		join: func(ctx context.Context, st *store, name, id string, link *faultproxy.Proxy) (participant, error) {
			pool, err := pgxpool.New(ctx, postgresURL(st, link))
			if err != nil {
				return nil, err
			}
			p := &pglockPeer{pool: pool, link: link, name: "bench:" + name, owner: fmt.Sprintf("pglock-%v", rand.Int()),
				lease: pglockLease, heartbeat: pglockHeartbeat}
			if crash {
				p.lease, p.heartbeat = postgresCrashTTL, postgresCrashTTL/3
			}
			// pglock's TryCreateTable.
			for _, q := range []string{
				`CREATE TABLE IF NOT EXISTS ` + pglockTable + ` (name CHARACTER VARYING(255) PRIMARY KEY,
					record_version_number BIGINT, data BYTEA, owner CHARACTER VARYING(255))`,
				`CREATE SEQUENCE IF NOT EXISTS ` + pglockTable + `_rvn OWNED BY ` + pglockTable + `.record_version_number`,
			} {
				if _, err := pool.Exec(ctx, q); err != nil {
					pool.Close()
					return nil, fmt.Errorf("create the lease table: %w", err)
				}
			}
			return p, nil
		},
	}
}

// errNotAcquired is pglock's ErrNotAcquired: the row has another RVN.
var errNotAcquired = errors.New("pglock-design: not acquired")

// errReleased is pglock's ErrLockAlreadyReleased: the row no longer has
// the RVN the holder wrote.
var errReleased = errors.New("pglock-design: lock already released")

// pglockPeer is one process using the lease table: its own pool, and the
// lock of its current acquire.
type pglockPeer struct {
	pool             *pgxpool.Pool
	link             *faultproxy.Proxy
	name, owner      string
	lease, heartbeat time.Duration

	mu    sync.Mutex
	rvn   int64 // the RVN held, or last seen while waiting; 0 for a new lock
	held  bool
	beats *pglockBeats
}

var _ crasher = (*pglockPeer)(nil)

// acquire is pglock's AcquireContext: try; when not acquired wait one
// lease duration and try again; a serialization failure is retried after
// one heartbeat interval.
func (p *pglockPeer) acquire(ctx context.Context) (time.Time, error) {
	p.mu.Lock()
	p.rvn, p.held = 0, false // a new Lock
	p.mu.Unlock()
	for {
		err := p.storeAcquire(ctx)
		wait := p.lease
		switch {
		case err == nil:
			at := time.Now()
			p.mu.Lock()
			p.beats = startPglockBeats(p)
			p.mu.Unlock()
			return at, nil
		case errors.Is(err, errNotAcquired):
		case serializationFailure(err):
			wait = p.heartbeat
		default:
			return time.Time{}, err
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return time.Time{}, err
		}
	}
}

func serializationFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

func (p *pglockPeer) nextRVN(ctx context.Context) (int64, error) {
	var rvn int64
	err := p.pool.QueryRow(ctx, `SELECT nextval('`+pglockTable+`_rvn')`).Scan(&rvn)
	return rvn, err
}

// storeAcquire is pglock's storeAcquire.
func (p *pglockPeer) storeAcquire(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.lease)
	defer cancel()
	rvn, err := p.nextRVN(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	seen := p.rvn
	p.mu.Unlock()
	tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `INSERT INTO `+pglockTable+` (name, record_version_number, data, owner) VALUES ($1, $2, NULL, $4)
		ON CONFLICT (name) DO UPDATE SET record_version_number = $2, owner = $4
		WHERE `+pglockTable+`.record_version_number IS NULL OR `+pglockTable+`.record_version_number = $3`,
		p.name, rvn, seen, p.owner); err != nil {
		return err
	}
	var actual int64
	if err := tx.QueryRow(ctx, `SELECT record_version_number FROM `+pglockTable+` WHERE name = $1 FOR UPDATE`, p.name).Scan(&actual); err != nil {
		return err
	}
	if actual != rvn {
		p.mu.Lock()
		p.rvn = actual
		p.mu.Unlock()
		return errNotAcquired
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	p.rvn, p.held = rvn, true
	p.mu.Unlock()
	return nil
}

// storeHeartbeat is pglock's storeHeartbeat: a new RVN for the held row.
func (p *pglockPeer) storeHeartbeat(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.held {
		return errReleased
	}
	ctx, cancel := context.WithTimeout(ctx, p.lease)
	defer cancel()
	rvn, err := p.nextRVN(ctx)
	if err != nil {
		return err
	}
	tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	tag, err := tx.Exec(ctx, `UPDATE `+pglockTable+` SET record_version_number = $3 WHERE name = $1 AND record_version_number = $2`,
		p.name, p.rvn, rvn)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		p.held = false
		return errReleased
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	p.rvn = rvn
	return nil
}

// release is pglock's ReleaseContext: stop the heartbeat, then set the RVN
// to NULL and delete the row in one transaction.
func (p *pglockPeer) release(ctx context.Context) error {
	p.mu.Lock()
	beats := p.beats
	p.beats = nil
	p.mu.Unlock()
	if beats != nil {
		beats.halt()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.held {
		return errReleased
	}
	p.held = false
	tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	tag, err := tx.Exec(ctx, `UPDATE `+pglockTable+` SET record_version_number = NULL WHERE name = $1 AND record_version_number = $2`, p.name, p.rvn)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errReleased
	}
	if _, err := tx.Exec(ctx, `DELETE FROM `+pglockTable+` WHERE name = $1 AND record_version_number IS NULL`, p.name); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// crash stops the heartbeat after one last one, whose send time it
// returns, then cuts the link: the waiter can take over once it has seen
// that RVN unchanged for a lease, so not before that send time + lease.
func (p *pglockPeer) crash(ctx context.Context) (crashInfo, error) {
	p.mu.Lock()
	beats := p.beats
	p.beats = nil
	p.mu.Unlock()
	if beats == nil || p.link == nil {
		return crashInfo{}, errors.New("crash: not holding behind a link")
	}
	beats.halt()
	sent := time.Now()
	if err := p.storeHeartbeat(ctx); err != nil {
		return crashInfo{}, fmt.Errorf("last heartbeat: %w", err)
	}
	if err := p.link.Cut(ctx); err != nil {
		return crashInfo{}, err
	}
	p.mu.Lock()
	p.held = false
	p.mu.Unlock()
	return crashInfo{cut: time.Now(), lastRenewal: sent, ttl: p.lease}, nil
}

func (p *pglockPeer) close() {
	p.mu.Lock()
	beats := p.beats
	p.beats = nil
	p.mu.Unlock()
	if beats != nil {
		beats.halt()
	}
	p.pool.Close()
}

// pglockBeats is pglock's heartbeat loop: a heartbeat at once, then one
// every heartbeat interval, until one fails or it is halted; a
// serialization failure is retried after one interval. Unlike pglock, a
// halt does not cancel a heartbeat in flight but waits for it, so that the
// RVN the holder keeps is always the one the row has.
type pglockBeats struct {
	stop chan struct{}
	done chan struct{}
}

func startPglockBeats(p *pglockPeer) *pglockBeats {
	b := &pglockBeats{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for {
			if err := p.storeHeartbeat(context.Background()); err != nil && !serializationFailure(err) {
				return
			}
			timer := time.NewTimer(p.heartbeat)
			select {
			case <-timer.C:
			case <-b.stop:
				timer.Stop()
				return
			}
		}
	}()
	return b
}

func (b *pglockBeats) halt() {
	close(b.stop)
	<-b.done
}
