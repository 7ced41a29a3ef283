package postgres

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/electionkit/election"
)

// beforeLine is a process of the build before the line (election_queue):
// it claims, releases and closes its session with that build's statements
// (testdata/before-line), on a connection of its own.
type beforeLine struct {
	t       *testing.T
	conn    *pgx.Conn
	session string
}

func newBeforeLine(t *testing.T, ctx context.Context, url string, ttl time.Duration) *beforeLine {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	p := &beforeLine{t: t, conn: conn, session: newSessionID()}
	if _, err := conn.Exec(ctx, `INSERT INTO public.election_sessions (id, expires_at, ttl_us, format)
VALUES ($1, clock_timestamp() + $2::bigint * interval '1 microsecond', $2::bigint, 1)`, p.session, ttl.Microseconds()); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *beforeLine) sql(file string) string {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "before-line", file))
	if err != nil {
		p.t.Fatal(err)
	}
	return string(b)
}

// claim returns the new fence, or 0 when the election is held.
func (p *beforeLine) claim(ctx context.Context, name, token string) uint64 {
	p.t.Helper()
	var (
		kind  string
		fence int64
		note  string
	)
	err := p.conn.QueryRow(ctx, p.sql("claim.sql"), name, p.session, tokenHash(token), "old-"+token, nil, "public.election_events").Scan(&kind, &fence, &note)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0
	case err != nil:
		p.t.Fatalf("claim by the build before the line: %v", err)
	case kind != "ok":
		p.t.Fatalf("claim by the build before the line: %s", kind)
	}
	return uint64(fence)
}

func (p *beforeLine) release(ctx context.Context, name, token string) bool {
	p.t.Helper()
	tag, err := p.conn.Exec(ctx, p.sql("release.sql"), name, tokenHash(token), "public.election_events")
	if err != nil {
		p.t.Fatalf("release by the build before the line: %v", err)
	}
	return tag.RowsAffected() == 1
}

func (p *beforeLine) close(ctx context.Context) {
	p.t.Helper()
	if _, err := p.conn.Exec(ctx, p.sql("close.sql"), p.session, "public.election_events"); err != nil {
		p.t.Fatalf("close by the build before the line: %v", err)
	}
}

// A process of the build before the line keeps working beside this one
// during a rolling upgrade (docs/record-format.md: a later format may add
// tables, never change what the statements compare). It ignores the line:
// its claim takes a vacant election ahead of it, its release and close
// vacate without promoting. This build's statements then repair the line:
// the first read of an election vacated that way promotes the first claim
// waiting, and fences never go backwards (a claim in line whose fence is
// not above the holder's is never promoted).
func TestFormatBuildBeforeLine(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, nil))
	old := newBeforeLine(t, ctx, srv.URL, time.Minute)
	enqueue := func(s election.Session, id string) (election.Claim, *election.Leader) {
		t.Helper()
		c, h, err := s.(election.Queuer).Enqueue(ctx, request("orders", id))
		if err != nil {
			t.Fatalf("Enqueue(%s): %v", id, err)
		}
		return c, h
	}
	wantLeader := func(id string, fence uint64, what string) {
		t.Helper()
		l, err := b.Leader(ctx, "orders")
		if err != nil || l.ID != id || l.Fence != fence {
			t.Fatalf("%s: Leader = %+v, %v; want %s with fence %d", what, l, err, id, fence)
		}
	}

	// This build's line, then the old build's claim: refused.
	sa, sb, sc := openSession(t, ctx, b, time.Minute), openSession(t, ctx, b, time.Minute), openSession(t, ctx, b, time.Minute)
	a, _ := enqueue(sa, "a")
	bc, _ := enqueue(sb, "b")
	cc, _ := enqueue(sc, "c")
	if f := old.claim(ctx, "orders", "old-1"); f != 0 {
		t.Fatalf("the old build's claim took a held election (fence %d)", f)
	}
	// The old build releases a's claim by token: vacated, not promoted;
	// this build's next read promotes b.
	if !old.release(ctx, "orders", "token-of-a-orders") {
		t.Fatal("the old build's release of a's claim by token did nothing")
	}
	wantLeader("b", bc.Fence, "after the old build released a's claim")
	if err := sa.Release(ctx, a); !errors.Is(err, election.ErrNotOwner) {
		t.Fatalf("a's release after the old build's = %v, want ErrNotOwner", err)
	}
	// This build's release promotes c; c's session closes: vacant.
	if err := sb.Release(ctx, bc); err != nil {
		t.Fatal(err)
	}
	wantLeader("c", cc.Fence, "after b's release")
	if err := sc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Leader(ctx, "orders"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("after c's session closed with no line: %v, want ErrNoLeader", err)
	}

	// The old build claims the vacant election and d waits behind it; the
	// old build's close vacates, and this build's next read promotes d.
	of := old.claim(ctx, "orders", "old-2")
	if of <= cc.Fence {
		t.Fatalf("the old build's claim after fence %d: %d", cc.Fence, of)
	}
	sd := openSession(t, ctx, b, time.Minute)
	dc, h := enqueue(sd, "d")
	if h == nil || h.ID != "old-old-2" || h.Fence != of || dc.Fence <= of {
		t.Fatalf("d enqueued behind %+v with fence %d; want the old build's claim, fence %d, below d's", h, dc.Fence, of)
	}
	old.close(ctx)
	wantLeader("d", dc.Fence, "after the old build's session closed")

	// d's session expires with e in line; the old build's claim takes the
	// election first (it deletes d's expired session row, as it always
	// did) with a fence above e's, and this build never promotes e below
	// it.
	// f's session must outlive the steps up to f's promotion, a few round
	// trips that a loaded machine can stretch: 2s, then a wait for its end.
	const fTTL = 2 * time.Second
	se, sf := openSession(t, ctx, b, time.Minute), openSession(t, ctx, b, fTTL)
	fOpened := time.Now() // f's session ends by fOpened + fTTL
	ec, _ := enqueue(se, "e")
	if err := sd.Release(ctx, dc); err != nil {
		t.Fatal(err)
	}
	wantLeader("e", ec.Fence, "after d's release")
	fc, _ := enqueue(sf, "f") // f waits, then its session expires
	gc, _ := enqueue(openSession(t, ctx, b, time.Minute), "g")
	if err := se.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wantLeader("f", fc.Fence, "after e's session closed")
	time.Sleep(time.Until(fOpened.Add(fTTL + 100*time.Millisecond))) // f's session expires; nobody has read since
	old2 := newBeforeLine(t, ctx, srv.URL, time.Minute)
	nf := old2.claim(ctx, "orders", "old-3")
	if nf <= gc.Fence {
		t.Fatalf("the old build's takeover after f's expiry: fence %d, not above g's %d in line", nf, gc.Fence)
	}
	wantLeader("old-old-3", nf, "after the old build's takeover")
}
