package postgres

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
)

// formatVersion is the record format of the rows and notifications this
// build writes (docs/record-format.md, internal/recordfmt).
const formatVersion = 1

// tableNames are the qualified names of a Config's objects.
type tableNames struct {
	schema   string
	sessions string // schema.PREFIXsessions
	claims   string // schema.PREFIXclaims
	fences   string // schema.PREFIXfences, the sequence
	queue    string // schema.PREFIXqueue: the line of waiting claims
	index    string // PREFIXclaims_session, unqualified
	qindex   string // PREFIXqueue_session, unqualified
	channel  string // schema.PREFIXevents: the LISTEN/NOTIFY channel
}

func names(c Config) tableNames {
	q := func(n string) string { return c.Schema + "." + c.TablePrefix + n }
	return tableNames{
		schema:   c.Schema,
		sessions: q("sessions"),
		claims:   q("claims"),
		fences:   q("fences"),
		queue:    q("queue"),
		index:    c.TablePrefix + "claims_session",
		qindex:   c.TablePrefix + "queue_session",
		channel:  q("events"),
	}
}

// schemaSQL is the schema of a Config: the migration schema.sql holds it
// for the default names. It is idempotent (IF NOT EXISTS).
func schemaSQL(n tableNames) string {
	r := strings.NewReplacer("{schema}", n.schema, "{sessions}", n.sessions, "{claims}", n.claims,
		"{fences}", n.fences, "{index}", n.index, "{queue}", n.queue, "{qindex}", n.qindex)
	return r.Replace(`CREATE SCHEMA IF NOT EXISTS {schema};

-- The fencing token of each new term: nextval, and never below the last
-- fence of the election's own row.
CREATE SEQUENCE IF NOT EXISTS {fences};

-- One row per live session (Backend.OpenSession). expires_at is set and
-- compared with the server's clock_timestamp(), never a client's clock.
CREATE TABLE IF NOT EXISTS {sessions} (
    id         text        PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    ttl_us     bigint      NOT NULL,
    format     integer     NOT NULL
);

-- One row per election name ever claimed. session_id, token_hash,
-- holder_id and metadata are NULL while the election is vacant; fence
-- stays, as the floor of the next term's fence. A claim whose session row
-- is gone or expired is vacant.
CREATE TABLE IF NOT EXISTS {claims} (
    name       text    PRIMARY KEY,
    fence      bigint  NOT NULL,
    session_id text,
    token_hash bytea,
    holder_id  text,
    metadata   jsonb,
    format     integer NOT NULL
);

CREATE INDEX IF NOT EXISTS {index} ON {claims} (session_id);

-- The line of waiting claims (election.Queuer), in fence order per
-- election: the fence is drawn when the claim joins the line, above the
-- election's last fence and every fence already in line. The statement
-- that ends a term (a release, a session's close, or the first statement
-- to find the holder's session expired) makes the first live claim in
-- line the holder, with that fence. Builds before this table ignore it.
CREATE TABLE IF NOT EXISTS {queue} (
    name       text    NOT NULL,
    fence      bigint  NOT NULL,
    session_id text    NOT NULL,
    token_hash bytea   NOT NULL,
    holder_id  text,
    metadata   jsonb,
    format     integer NOT NULL,
    PRIMARY KEY (name, fence)
);

CREATE INDEX IF NOT EXISTS {qindex} ON {queue} (session_id);
`)
}

// ensureSchema creates the schema (unless NoCreate) or checks that it
// exists. Creation runs in one transaction under an advisory lock, so that
// backends opening at once do not race on CREATE ... IF NOT EXISTS.
func (b *Backend) ensureSchema(ctx context.Context) error {
	present, err := b.schemaPresent(ctx, b.pool)
	if err != nil {
		return storeError("check tables", "", err)
	}
	if present {
		return nil
	}
	if b.cfg.NoCreate {
		return invalid("NoCreate", "the tables %s, %s, %s and the sequence %s are not all there; create them with schema.sql (with your schema and prefix; it is idempotent, and adds the line table %s to a schema made before it) or let Open create them",
			b.names.sessions, b.names.claims, b.names.queue, b.names.fences, b.names.queue)
	}
	err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, b.names.channel); err != nil {
			return err
		}
		// Another Backend may have created them while we waited: then
		// leave them be. CREATE INDEX IF NOT EXISTS locks its table
		// before it looks, and against Backends already using the
		// tables that lock can deadlock.
		if present, err := b.schemaPresent(ctx, tx); err != nil || present {
			return err
		}
		_, err := tx.Exec(ctx, schemaSQL(b.names))
		return err
	})
	if err != nil {
		return storeError("create tables", "", err)
	}
	return nil
}

// schemaPresent reports whether the tables and the sequence are all there.
// It reads pg_class with the statement's snapshot rather than through
// to_regclass, whose cache a session refreshes only when it takes a
// relation lock: after waiting on the advisory lock, to_regclass could
// still miss the tables another Backend had just created.
func (b *Backend) schemaPresent(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (bool, error) {
	unqualified := func(n string) string { return n[strings.IndexByte(n, '.')+1:] }
	var present bool
	err := q.QueryRow(ctx, `SELECT count(*) = 4 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1::text AND c.relname = ANY($2::text[])`,
		b.names.schema, []string{unqualified(b.names.sessions), unqualified(b.names.claims), unqualified(b.names.fences), unqualified(b.names.queue)}).Scan(&present)
	return present, err
}

// errNoSession is the native cause when the claiming session's row is gone
// or expired.
var errNoSession = errors.New("session row gone or expired")

// statements are the SQL of one Config. Claims, enqueues, releases and
// session ends run as a batch of statements in one transaction and one
// round trip (line.go): lockNames or lockNew, then settle, then the
// operation.
type statements struct {
	openSession, renew, read, sessionLeft         string
	lockNames, lockNew, lockSession, settle, take string
}

func statementsFor(n tableNames) statements {
	r := strings.NewReplacer("{sessions}", n.sessions, "{claims}", n.claims, "{fences}", n.fences, "{queue}", n.queue)
	s := statements{
		// Opening a session also deletes sessions that expired over a
		// minute ago (crashed electors'; safe at any time, since an
		// expired session is never renewed and its claims are vacant).
		openSession: r.Replace(`WITH gc AS (
    DELETE FROM {sessions} WHERE id IN (
        SELECT id FROM {sessions} WHERE expires_at < clock_timestamp() - interval '1 minute'
        LIMIT 100 FOR UPDATE SKIP LOCKED)
)
INSERT INTO {sessions} (id, expires_at, ttl_us, format)
VALUES ($1, clock_timestamp() + $2::bigint * interval '1 microsecond', $2::bigint, 1)`),

		// One UPDATE of the session row, refused once it has expired; the
		// same statement lists the session's claims.
		renew: r.Replace(`WITH s AS (
    UPDATE {sessions} SET expires_at = clock_timestamp() + ttl_us * interval '1 microsecond'
    WHERE id = $1 AND expires_at > clock_timestamp() RETURNING id
)
SELECT (SELECT count(*) FROM s), c.name, c.fence, c.token_hash
FROM (VALUES (1)) one LEFT JOIN {claims} c ON c.session_id = $1`),

		// The session's remaining TTL by the server's clock in µs; 0 or
		// less when it has expired, -1 when it is gone.
		sessionLeft: r.Replace(`SELECT coalesce((SELECT (extract(epoch FROM (expires_at - clock_timestamp())) * 1000000)::bigint
    FROM {sessions} WHERE id = $1::text), -1)`),

		// The last column says whether claims wait in line above the
		// row's fence: with a holder that is not alive, a settle is due
		// (Backend.readMany).
		read: r.Replace(`SELECT c.name, c.fence, c.session_id, c.holder_id, c.metadata::text,
    coalesce(s.expires_at > clock_timestamp(), false),
    coalesce((extract(epoch FROM (s.expires_at - clock_timestamp())) * 1000000)::bigint, 0),
    EXISTS (SELECT 1 FROM {queue} q WHERE q.name = c.name AND q.fence > c.fence)
FROM {claims} c LEFT JOIN {sessions} s ON s.id = c.session_id
WHERE c.name = ANY($1)`),
	}
	lineStatements(&s, r)
	return s
}

// quoteChannel is the channel as an identifier for LISTEN.
func quoteChannel(ch string) string { return pgx.Identifier{ch}.Sanitize() }

// Schema returns the SQL that creates the schema, tables, sequence and
// index cfg's Backend uses (idempotent: IF NOT EXISTS), for teams that
// create them with their own migrations and set Config.NoCreate. For the
// default names it is the file schema.sql of this package. It returns an
// error wrapping [election.ErrInvalidArgument] for an invalid cfg.
func Schema(cfg Config) (string, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return "", err
	}
	return schemaSQL(names(cfg)), nil
}
