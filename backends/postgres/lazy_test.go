package postgres

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/storedown"
	"github.com/electionkit/election/internal/testserver"
)

// lazy=true: Open does no I/O (no table creation, no listening
// connection, no self-NOTIFY); the first OpenSession, Leader, Watch or
// Notify does them. Against a port nothing listens on, Open succeeds and
// every first use fails with ErrUnavailable; against a listener that never
// answers, Open makes no connection; against a real server, the tables
// appear only at first use and everything works; and a candidate started
// while the server is down is elected once it is up.
func TestOpenURLLazy(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	lazy := url.Values{"lazy": {"true"}, "connect_timeout": {"2"}}

	nothing := net.JoinHostPort("127.0.0.1", strconv.Itoa(testserver.FreePort(t)))
	b := newBackend(t, ctx, serverURL(nothing, lazy))
	if _, err := b.OpenSession(ctx, time.Second); !errors.Is(err, election.ErrUnavailable) {
		t.Errorf("OpenSession with nothing listening: %v, want ErrUnavailable", err)
	}
	if _, err := b.Leader(ctx, "lazy"); !errors.Is(err, election.ErrUnavailable) {
		t.Errorf("Leader with nothing listening: %v, want ErrUnavailable", err)
	}
	if _, err := b.Watch(ctx, "lazy"); !errors.Is(err, election.ErrUnavailable) {
		t.Errorf("Watch with nothing listening: %v, want ErrUnavailable", err)
	}
	if _, err := b.Notify(ctx, "lazy", func(election.WatchEvent) {}); !errors.Is(err, election.ErrUnavailable) {
		t.Errorf("Notify with nothing listening: %v, want ErrUnavailable", err)
	}

	silent := storedown.Listen(t)
	quiet, err := OpenURL(ctx, serverURL(silent.Addr(), lazy))
	if err != nil {
		t.Fatalf("OpenURL lazy against a silent listener: %v", err)
	}
	if err := quiet.Close(); err != nil {
		t.Fatal(err)
	}
	if n := silent.Accepted(); n != 0 {
		t.Fatalf("OpenURL with lazy=true connected %d times, want none", n)
	}

	srv := startServer(t)
	conn, err := pgx.Connect(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tables := func() bool {
		t.Helper()
		var there bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass('public.lazy_claims') IS NOT NULL`).Scan(&there); err != nil {
			t.Fatal(err)
		}
		return there
	}
	withPrefix := url.Values{"lazy": {"true"}, "table_prefix": {"lazy_"}}
	real := newBackend(t, ctx, serverURL(srv.Addr, withPrefix))
	if tables() {
		t.Fatal("OpenURL with lazy=true created the tables")
	}
	s := openSession(t, ctx, real, 5*time.Second)
	if !tables() {
		t.Fatal("the first use of a lazy Backend did not create the tables")
	}
	ch, err := real.Watch(ctx, "lazy")
	if err != nil {
		t.Fatal(err)
	}
	<-ch // vacant
	c, err := s.Claim(ctx, request("lazy", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-ch; ev.Leader == nil || ev.Leader.Fence != c.Fence {
		t.Fatalf("watch after the claim: %+v", ev)
	}
	if l, err := real.Leader(ctx, "lazy"); err != nil || l.ID != "a" {
		t.Fatalf("Leader: %+v, %v", l, err)
	}

	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	backend, cfg, err := election.Open(ctx, "postgres://postgres@"+srv.Addr+"/postgres?sslmode=disable&connect_timeout=2&lazy=true&table_prefix=down_&ttl=2s")
	if err != nil {
		t.Fatalf("election.Open lazy with postgres down: %v", err)
	}
	defer election.CloseBackend(backend)
	storedown.ElectedOnceUp(t, ctx, backend, cfg, func() error { return srv.Start(ctx) })
}
