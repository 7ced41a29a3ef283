package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/electionkit/election"
)

// The line of waiting claims (election.Queuer) and the statements that
// change who holds an election.
//
// Every claim, enqueue, release and session end is a batch of statements
// sent in one round trip and run in one transaction:
//
//  1. lock: the election rows concerned, FOR UPDATE in name order (a claim
//     or enqueue inserts a vacant row first if there is none). Everything
//     that changes an election's row or line holds this lock, so that
//  2. settle, whose snapshot is taken after the lock, sees every earlier
//     change of those elections. Settle ends the terms that are over and
//     starts the next: it deletes the session rows of holders and waiters
//     that it finds expired (a row modification, which Postgres re-checks
//     on the newest version: a renewal that committed meanwhile keeps its
//     row; one that comes after finds the row gone and is refused), then
//     makes the first live claim in line the holder of every election
//     whose holder is gone, expired, released ($3) or closing ($4), and
//     announces it (a claim); an election released or closed with no live
//     claim in line is vacated and announced (a release).
//  3. the operation itself (take), on a snapshot that includes settle's
//     work.
//
// A claim or enqueue first sends lock and take alone, which suffices while
// the holder is alive or the election vacant with no line; take asks for
// the settle (it answers "retry") when it finds a holder session row that
// has expired, or claims in line behind a vacant row.
//
// A holder or a waiter is judged expired only by that deleting step, never
// by a plain read: under READ COMMITTED a plain read can see a session row
// older than a renewal that has just committed (README, "The renew/takeover
// race"). Locks are taken in one order, election rows (by name) before
// session rows (by id), so these statements never deadlock one another.
//
// Reads stay plain SELECTs unless an election's holder is not alive while
// claims wait above its fence: then the read settles those elections first
// (Backend.readMany), so that no reader ever sees an election vacant while
// a live claim waits in line, and expiry, which writes nothing, is turned
// into a promotion by the first statement that finds it.
func lineStatements(s *statements, r *strings.Replacer) {
	// $1: names.
	s.lockNames = r.Replace(`SELECT name FROM {claims} WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE`)
	// $1: name. ON CONFLICT DO UPDATE locks the row even when its WHERE
	// is false.
	s.lockNew = r.Replace(`INSERT INTO {claims} AS c (name, fence, format) VALUES ($1::text, 0, 1)
ON CONFLICT (name) DO UPDATE SET format = c.format WHERE false`)
	// $1: session id: the elections it holds or waits in line for.
	s.lockSession = r.Replace(`SELECT name FROM {claims}
WHERE session_id = $1::text OR name IN (SELECT name FROM {queue} WHERE session_id = $1::text)
ORDER BY name FOR UPDATE`)

	// $1 names, $2 channel, $3 token hash released (or NULL), $4 session
	// closing (or NULL). Rows: kind ('promoted', 'vacated', 'left' the
	// line, 'released'), name, fence, notify.
	s.settle = r.Replace(`WITH c AS (
    SELECT name, fence, session_id, token_hash FROM {claims}
    WHERE name = ANY($1::text[]) OR session_id = $4::text
), ln AS (
    SELECT q.name, q.fence, q.session_id, q.token_hash, s.expires_at
    FROM {queue} q JOIN c ON c.name = q.name AND q.fence > c.fence
    LEFT JOIN {sessions} s ON s.id = q.session_id
), rel AS (
    SELECT c.name FROM c JOIN {sessions} s ON s.id = c.session_id
    WHERE c.token_hash = $3::bytea AND s.expires_at > clock_timestamp()
), expired AS (
    SELECT id FROM {sessions}
    WHERE id IN (SELECT session_id FROM c UNION SELECT session_id FROM ln)
      AND id IS DISTINCT FROM $4::text AND expires_at <= clock_timestamp()
    ORDER BY id FOR UPDATE
), killed AS (
    DELETE FROM {sessions} s USING expired e WHERE s.id = e.id RETURNING s.id
), closed AS (
    DELETE FROM {sessions} WHERE id = $4::text RETURNING id
), left_line AS (
    DELETE FROM {queue} q
    WHERE (q.name = ANY($1::text[]) AND q.token_hash = $3::bytea) OR q.session_id = $4::text
    RETURNING q.name, q.fence
), dead AS (
    SELECT c.name, c.fence, (c.name IN (SELECT name FROM rel) OR c.session_id = $4::text) AS ended
    FROM c
    WHERE c.session_id IS NULL OR c.session_id = $4::text
       OR c.name IN (SELECT name FROM rel)
       OR c.session_id IN (SELECT id FROM killed)
       OR NOT EXISTS (SELECT 1 FROM {sessions} s WHERE s.id = c.session_id)
), first_live AS (
    SELECT DISTINCT ON (ln.name) ln.name, ln.fence, ln.expires_at > clock_timestamp() AS alive
    FROM ln JOIN dead ON dead.name = ln.name
    WHERE ln.expires_at IS NOT NULL
      AND ln.session_id NOT IN (SELECT id FROM killed)
      AND ln.session_id IS DISTINCT FROM $4::text
      AND ln.token_hash IS DISTINCT FROM $3::bytea
    ORDER BY ln.name, ln.fence
), nxt AS (
    SELECT q.name, q.fence, q.session_id, q.token_hash, q.holder_id, q.metadata
    FROM first_live f JOIN {queue} q ON q.name = f.name AND q.fence = f.fence
    WHERE f.alive
), up AS (
    UPDATE {claims} c SET fence = coalesce(n.fence, c.fence), session_id = n.session_id,
        token_hash = n.token_hash, holder_id = n.holder_id, metadata = n.metadata, format = 1
    FROM dead d LEFT JOIN nxt n ON n.name = d.name
    WHERE c.name = d.name AND (n.name IS NOT NULL OR d.ended)
    RETURNING c.name, c.fence, n.name IS NOT NULL AS promoted
), dropped AS (
    DELETE FROM {queue} q USING dead d
    WHERE q.name = d.name AND (q.fence <= d.fence
        OR q.fence <= (SELECT n.fence FROM nxt n WHERE n.name = d.name)
        OR q.session_id IN (SELECT id FROM killed)
        OR NOT EXISTS (SELECT 1 FROM {sessions} s WHERE s.id = q.session_id))
)
SELECT CASE WHEN u.promoted THEN 'promoted' ELSE 'vacated' END, u.name, u.fence,
    pg_notify($2::text, format('{"v":1,"kind":%s,"name":%s,"fence":%s}',
        to_json(CASE WHEN u.promoted THEN 'claim' ELSE 'release' END)::text, to_json(u.name)::text, u.fence))::text
FROM up u
UNION ALL SELECT 'left', l.name, l.fence, '' FROM left_line l
UNION ALL SELECT 'released', r.name, 0, '' FROM rel r`)

	// $1 name, $2 session, $3 token hash, $4 candidate ID, $5 metadata,
	// $6 channel, $7 enqueue. After lockNew and settle: take the
	// election if it is vacant with no claim in line, or (enqueue) join
	// the line behind a live holder. A holder whose session row is there
	// but expired was not judged by settle (it expired since): 'retry'.
	// Rows: kind, fence (the new claim's; the holder's for 'held'),
	// holder ID, metadata, holder fence, holder's TTL left (µs), notify.
	s.take = r.Replace(`WITH mine AS (
    SELECT 1 FROM {sessions} WHERE id = $2::text AND expires_at > clock_timestamp()
), c AS (
    SELECT c.fence, c.session_id, c.token_hash, c.holder_id, c.metadata, s.id AS sid,
        coalesce(s.expires_at > clock_timestamp(), false) AS alive,
        coalesce((extract(epoch FROM (s.expires_at - clock_timestamp())) * 1000000)::bigint, 0) AS left_us
    FROM {claims} c LEFT JOIN {sessions} s ON s.id = c.session_id WHERE c.name = $1::text
), st AS (
    SELECT CASE
        WHEN NOT EXISTS (SELECT 1 FROM mine) THEN 'nosession'
        WHEN c.session_id = $2::text AND c.token_hash = $3::bytea THEN 'held'
        WHEN c.sid IS NOT NULL AND c.alive THEN CASE WHEN $7::boolean THEN 'queue' ELSE 'taken' END
        WHEN c.sid IS NOT NULL THEN 'retry'
        WHEN EXISTS (SELECT 1 FROM {queue} q WHERE q.name = $1::text AND q.fence > c.fence) THEN 'retry'
        ELSE 'take' END AS what,
        greatest(c.fence, (SELECT max(q.fence) FROM {queue} q WHERE q.name = $1::text)) AS floor
    FROM c
), took AS (
    UPDATE {claims} c SET fence = greatest(nextval('{fences}'), st.floor + 1), session_id = $2::text,
        token_hash = $3::bytea, holder_id = $4::text, metadata = $5::jsonb, format = 1
    FROM st WHERE c.name = $1::text AND st.what = 'take'
    RETURNING c.fence
), queued AS (
    INSERT INTO {queue} (name, fence, session_id, token_hash, holder_id, metadata, format)
    SELECT $1::text, greatest(nextval('{fences}'), st.floor + 1), $2::text, $3::bytea, $4::text, $5::jsonb, 1
    FROM st WHERE st.what = 'queue'
    RETURNING fence
)
SELECT 'ok', t.fence, NULL::text, NULL::text, 0::bigint, 0::bigint,
    pg_notify($6::text, format('{"v":1,"kind":"claim","name":%s,"fence":%s}', to_json($1::text)::text, t.fence))::text
FROM took t
UNION ALL SELECT 'queued', q.fence, c.holder_id, c.metadata::text, c.fence, c.left_us, '' FROM queued q, c
UNION ALL SELECT st.what, c.fence, c.holder_id, c.metadata::text, c.fence, c.left_us, '' FROM st, c
WHERE st.what NOT IN ('take', 'queue')`)
}

// settled is what a settle did to one election.
type settled struct {
	kind  string // promoted, vacated, left, released
	name  string
	fence int64
}

// queueSettle adds settle to batch.
func (b *Backend) queueSettle(batch *pgx.Batch, names []string, releasedHash []byte, closing *string, out *[]settled) {
	if names == nil {
		names = []string{}
	}
	batch.Queue(b.sql.settle, names, b.names.channel, releasedHash, closing).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				s    settled
				note string
			)
			if err := rows.Scan(&s.kind, &s.name, &s.fence, &note); err != nil {
				return err
			}
			*out = append(*out, s)
		}
		return rows.Err()
	})
}

// takeResult is the answer of the take statement.
type takeResult struct {
	kind        string
	fence       int64
	holderID    *string
	metadata    *string
	holderFence int64
	leftMicros  int64
}

// take claims (enqueue false) or enqueues req for session s. The first
// attempt is lock and take, in one round trip: enough while the holder is
// alive or the election vacant with no line, the common cases. When take
// answers "retry" (the holder's session row is there but expired, or
// claims wait in line behind a vacant row: a settle must judge them), the
// next attempts are lock, settle, take, again while the answer is "retry"
// (the holder's session expired between settle's snapshot and take's).
func (s *session) take(ctx context.Context, req election.ClaimRequest, enqueue bool) (takeResult, error) {
	md, err := encodeMetadata(req.Metadata)
	if err != nil {
		return takeResult{}, invalid("metadata", "cannot be encoded: %v", err)
	}
	b := s.backend
	op := "claim"
	if enqueue {
		op = "enqueue"
	}
	for attempt := 0; ; attempt++ {
		var (
			res     takeResult
			settles []settled
			note    string
			got     bool
		)
		batch := &pgx.Batch{}
		batch.Queue(b.sql.lockNew, req.Name)
		if attempt > 0 {
			b.queueSettle(batch, []string{req.Name}, nil, nil, &settles)
		}
		batch.Queue(b.sql.take, req.Name, s.id, tokenHash(req.Token), req.ID, md, b.names.channel, enqueue).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				if err := rows.Scan(&res.kind, &res.fence, &res.holderID, &res.metadata, &res.holderFence, &res.leftMicros, &note); err != nil {
					return err
				}
				got = true
			}
			return rows.Err()
		})
		if err := b.pool.SendBatch(ctx, batch).Close(); err != nil {
			return takeResult{}, storeError(op, req.Name, err)
		}
		if !got {
			return takeResult{}, storeError(op, req.Name, errors.New("no answer from the claim statement"))
		}
		if res.kind != "retry" || attempt >= 5 {
			return res, nil
		}
		if attempt == 0 {
			continue // a settle is due: send it now
		}
		if err := sleepCtx(ctx, time.Millisecond); err != nil {
			return takeResult{}, storeError(op, req.Name, err)
		}
	}
}

// holder is the take statement's holder as a Leader.
func (r takeResult) holder(name string) (election.Leader, error) {
	l := election.Leader{Election: name, Fence: uint64(r.holderFence)}
	if r.holderID != nil {
		l.ID = *r.holderID
	}
	if r.metadata != nil {
		md, err := decodeMetadata(*r.metadata)
		if err != nil {
			return election.Leader{}, fmt.Errorf("election %q: metadata: %w", name, err)
		}
		l.Metadata = md
	}
	return l, nil
}

// Enqueue takes the election req.Name if it is vacant with no claim in
// line, as Claim does, and otherwise puts the claim in line behind every
// claim already there, with a fence drawn now: above the election's last
// fence and every fence in line, so strictly greater than every earlier
// term's. It returns the claim and the current holder (nil when the claim
// holds the election now). A claim in line becomes the holder, with that
// fence, in the transaction that ends the term before it: a release, a
// Session.Close, or the first statement of any Backend (a read included) to
// find the holder's session expired; the promotion is announced as a claim.
// Until then it lives as long as its session; Release takes it out of
// line. Errors as Claim's; Enqueue never returns a *TakenError.
func (s *session) Enqueue(ctx context.Context, req election.ClaimRequest) (election.Claim, *election.Leader, error) {
	if s.isClosed() {
		return election.Claim{}, nil, fmt.Errorf("postgres: enqueue %q: %w", req.Name, election.ErrSessionExpired)
	}
	res, err := s.take(ctx, req, true)
	if err != nil {
		return election.Claim{}, nil, err
	}
	switch res.kind {
	case "ok", "held":
		return election.Claim{Name: req.Name, Token: req.Token, Fence: uint64(res.fence)}, nil, nil
	case "queued":
		l, err := res.holder(req.Name)
		if err != nil {
			return election.Claim{}, nil, storeError("enqueue", req.Name, err)
		}
		return election.Claim{Name: req.Name, Token: req.Token, Fence: uint64(res.fence)}, &l, nil
	case "nosession":
		return election.Claim{}, nil, fmt.Errorf("postgres: enqueue %q: %w: %w", req.Name, election.ErrSessionExpired, errNoSession)
	case "retry":
		return election.Claim{}, nil, storeError("enqueue", req.Name, errors.New("the holder's session kept expiring between statements; try again"))
	}
	return election.Claim{}, nil, storeError("enqueue", req.Name, fmt.Errorf("unexpected reply %q", res.kind))
}

// settleNames settles the elections names (lockNames, settle, read) and
// returns their states after it.
func (b *Backend) settleNames(ctx context.Context, names []string) (map[string]state, error) {
	names = slices.Clone(names)
	slices.Sort(names)
	var (
		settles []settled
		out     map[string]state
	)
	batch := &pgx.Batch{}
	batch.Queue(b.sql.lockNames, names)
	b.queueSettle(batch, names, nil, nil, &settles)
	readAt := time.Now()
	batch.Queue(b.sql.read, names).Query(func(rows pgx.Rows) error {
		var err error
		out, _, err = scanStates(rows, names, readAt)
		return err
	})
	if err := b.pool.SendBatch(ctx, batch).Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// sleepCtx sleeps d unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
