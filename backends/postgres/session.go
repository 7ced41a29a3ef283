package postgres

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/electionkit/election"
)

var (
	_ election.Session = (*session)(nil)
	_ election.Queuer  = (*session)(nil)
)

// session is an [election.Session] on Postgres: a row of the sessions
// table whose expires_at (server clock) every claim made through it
// depends on. Renewing it is one UPDATE of that row whatever the number of
// claims.
type session struct {
	backend *Backend
	id      string
	ttl     time.Duration

	mu     sync.Mutex
	closed bool
}

// TTL returns the TTL asked for: the server applies it as given.
func (s *session) TTL() time.Duration { return s.ttl }

func (s *session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Claim takes the election if it is vacant with no claim waiting in line
// (or its holder's session has expired or ended, and no live claim waits):
// one round trip of lock, settle and take (line.go) that returns the new
// fence and announces the claim on the prefix's channel. A claim the
// session already holds with the same token is a replay and returns the
// stored fence. A holder's expiry is judged by deleting its session row,
// never by a plain read (README, "The renew/takeover race").
func (s *session) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	if s.isClosed() {
		return election.Claim{}, fmt.Errorf("postgres: claim %q: %w", req.Name, election.ErrSessionExpired)
	}
	res, err := s.take(ctx, req, false)
	if err != nil {
		return election.Claim{}, err
	}
	switch res.kind {
	case "ok", "held":
		return election.Claim{Name: req.Name, Token: req.Token, Fence: uint64(res.fence)}, nil
	case "nosession":
		return election.Claim{}, fmt.Errorf("postgres: claim %q: %w: %w", req.Name, election.ErrSessionExpired, errNoSession)
	case "taken":
		l, err := res.holder(req.Name)
		if err != nil {
			return election.Claim{}, storeError("claim", req.Name, err)
		}
		left := max(time.Duration(res.leftMicros)*time.Microsecond, time.Millisecond)
		return election.Claim{}, &election.TakenError{Holder: l, ExpiresIn: left}
	case "retry":
		// The holder's session expired while we looked: try again soon.
		return election.Claim{}, &election.TakenError{Holder: election.Leader{Election: req.Name}, ExpiresIn: time.Millisecond}
	}
	return election.Claim{}, storeError("claim", req.Name, fmt.Errorf("unexpected reply %q", res.kind))
}

// Release ends the claim whose token hash the store holds, held or in
// line, in one round trip (lock, settle): a held claim whose session has
// not expired is handed to the first live claim in line, announced as a
// claim, or the election is vacated and the release announced; a claim in
// line leaves it. Anything else is [election.ErrNotOwner].
func (s *session) Release(ctx context.Context, c election.Claim) error {
	b := s.backend
	var settles []settled
	batch := &pgx.Batch{}
	batch.Queue(b.sql.lockNames, []string{c.Name})
	b.queueSettle(batch, []string{c.Name}, tokenHash(c.Token), nil, &settles)
	if err := b.pool.SendBatch(ctx, batch).Close(); err != nil {
		return storeError("release", c.Name, err)
	}
	for _, st := range settles {
		if st.name == c.Name && (st.kind == "released" || st.kind == "left") {
			return nil
		}
	}
	return fmt.Errorf("postgres: release %q: %w", c.Name, election.ErrNotOwner)
}

// Renew extends the session row by its TTL from the server's
// clock_timestamp(), on the Backend's renewal connection: one UPDATE,
// refused once the session has expired (then every claim is lost:
// [election.ErrSessionExpired]). The same statement lists the session's
// claims; a claim of claims not among them (released, or never made with
// that token and fence) is reported in a *[election.NotOwnerError].
func (s *session) Renew(ctx context.Context, claims []election.Claim) error {
	if s.isClosed() {
		return fmt.Errorf("postgres: renew: %w", election.ErrSessionExpired)
	}
	type held struct {
		fence uint64
		hash  []byte
	}
	alive := false
	holding := map[string]held{}
	sent := time.Now()
	err := s.backend.onRenewConn(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, s.backend.sql.renew, s.id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				count int64
				name  *string
				fence *int64
				hash  []byte
			)
			if err := rows.Scan(&count, &name, &fence, &hash); err != nil {
				return err
			}
			alive = count > 0
			if name != nil && fence != nil {
				holding[*name] = held{fence: uint64(*fence), hash: hash}
			}
		}
		return rows.Err()
	})
	if err != nil {
		return storeError("renew", singleName(claims), err)
	}
	if !alive {
		return fmt.Errorf("postgres: renew: %w: %w", election.ErrSessionExpired, errNoSession)
	}
	// The server set the expiry at least a TTL after sent (same host or
	// not, its statement ran after we sent it): this Backend's watches of
	// elections the session holds need no read before then.
	s.backend.hub.sessionRenewed(s.id, sent.Add(s.ttl))
	var failed []election.Claim
	for _, c := range claims {
		h, ok := holding[c.Name]
		if !ok || h.fence != c.Fence || !bytes.Equal(h.hash, tokenHash(c.Token)) {
			failed = append(failed, c)
		}
	}
	if len(failed) > 0 {
		return &election.NotOwnerError{Claims: failed}
	}
	return nil
}

// Close deletes the session row, takes its claims out of line, and hands
// each election it holds to the first live claim in line or vacates it,
// announcing each, in one round trip (lock, settle). Later calls return [election.ErrSessionExpired].
// Close is idempotent; when the server cannot be reached it returns an
// error wrapping [election.ErrUnavailable] and the row expires at its TTL.
func (s *session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	b := s.backend
	var settles []settled
	batch := &pgx.Batch{}
	batch.Queue(b.sql.lockSession, s.id)
	b.queueSettle(batch, nil, nil, &s.id, &settles)
	if err := b.pool.SendBatch(ctx, batch).Close(); err != nil {
		return storeError("close session", "", err)
	}
	return nil
}

// singleName names the election in an error when only one is involved.
func singleName(claims []election.Claim) string {
	if len(claims) == 1 {
		return claims[0].Name
	}
	return ""
}

// onRenewConn runs fn on the renewal connection, connecting it first if
// needed; a connection that fails is closed, and the next renewal
// connects again.
func (b *Backend) onRenewConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	b.renewMu.Lock()
	defer b.renewMu.Unlock()
	if b.hub.isClosed() {
		return errClosed
	}
	if b.renewConn == nil {
		conn, err := pgx.ConnectConfig(ctx, b.renewConfig)
		if err != nil {
			return err
		}
		b.renewConn = conn
	}
	err := fn(b.renewConn)
	if err != nil && (ctx.Err() != nil || b.renewConn.IsClosed() || !isServerError(err)) {
		closeCtx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_ = b.renewConn.Close(closeCtx)
		cancel()
		b.renewConn = nil
	}
	return err
}
