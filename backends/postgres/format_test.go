package postgres

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/recordfmt"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "format-v1", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every format 1 fixture decodes, in this build and every later one.
func TestFormatV1FixturesDecode(t *testing.T) {
	for file, want := range map[string]announcement{
		"announce-claim.json":   {V: 1, Kind: kindClaim, Name: "orders", Fence: 1234},
		"announce-release.json": {V: 1, Kind: kindRelease, Name: "orders", Fence: 1234},
		"announce-ping.json":    {V: 1, Kind: kindPing, Nonce: "5f0c6e1d2a9b4c3e8d7f6a5b4c3d2e1f"},
	} {
		a, ok := decodeAnnouncement(fixture(t, file))
		if !ok || a != want {
			t.Errorf("%s = %+v (%v), want %+v", file, a, ok, want)
		}
	}
}

// What this build announces is format 1 exactly as the fixtures show it,
// up to the fence, and its rows carry format 1.
func TestFormatV1WrittenAsFixtures(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, nil))
	listener, err := pgx.Connect(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(context.Background())
	if _, err := listener.Exec(ctx, `LISTEN "public.election_events"`); err != nil {
		t.Fatal(err)
	}
	s := openSession(t, ctx, b, 5*time.Second)
	c, err := s.Claim(ctx, election.ClaimRequest{Name: "orders", Token: "tok", ID: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, c); err != nil {
		t.Fatal(err)
	}
	fence := regexp.MustCompile(`"fence":\d+`)
	for _, file := range []string{"announce-claim.json", "announce-release.json"} {
		n, err := listener.WaitForNotification(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := fence.ReplaceAllString(n.Payload, `"fence":F`)
		if want := fence.ReplaceAllString(fixture(t, file), `"fence":F`); got != want {
			t.Errorf("announced %s, want the layout of %s: %s", got, file, want)
		}
	}
	var formats []int
	rows, err := listener.Query(ctx, `SELECT format FROM public.election_claims UNION ALL SELECT format FROM public.election_sessions`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var f int
		if err := rows.Scan(&f); err != nil {
			t.Fatal(err)
		}
		formats = append(formats, f)
	}
	if len(formats) != 2 || formats[0] != recordfmt.Version || formats[1] != recordfmt.Version {
		t.Errorf("row formats %v, want [1 1]", formats)
	}
}

// A later format's rows and announcements are read by this one: a claim
// row and session row of format 2, and a "v":2 announcement with fields
// format 1 does not know, written raw, show the holder to Leader and to a
// watch, and the election is taken over once the v2 session expires.
func TestFormatLaterVersionIsRead(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, nil))
	ch, err := b.Watch(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	<-ch // vacant
	srv.Exec(t, `INSERT INTO public.election_sessions (id, expires_at, ttl_us, format)
VALUES ('v2session', clock_timestamp() + interval '1 second', 1000000, 2);
INSERT INTO public.election_claims (name, fence, session_id, token_hash, holder_id, metadata, format)
VALUES ('orders', 99000000, 'v2session', '\x00', 'node-v2', '{"zone":"eu-1"}', 2);
SELECT pg_notify('public.election_events', '{"v":2,"kind":"claim","name":"orders","fence":99000000,"lease_class":"gold"}')`)
	ev := <-ch
	if ev.Leader == nil || ev.Leader.ID != "node-v2" || ev.Leader.Fence != 99000000 || ev.Leader.Metadata["zone"] != "eu-1" {
		t.Fatalf("watch after a v2 claim: %+v", ev)
	}
	if l, err := b.Leader(ctx, "orders"); err != nil || l.ID != "node-v2" {
		t.Fatalf("Leader: %+v, %v", l, err)
	}
	s := openSession(t, ctx, b, 5*time.Second)
	if ev := <-ch; ev.Leader != nil || ev.Err != nil {
		t.Fatalf("watch when the v2 session expired: %+v, want vacant", ev)
	}
	c, err := s.Claim(ctx, request("orders", "node-v1"))
	if err != nil {
		t.Fatalf("claim after the v2 session expired: %v", err)
	}
	if c.Fence <= 99000000 {
		t.Fatalf("fence %d after the v2 term's 99000000", c.Fence)
	}
}
