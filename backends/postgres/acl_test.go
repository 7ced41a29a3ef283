package postgres

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/electionkit/election"
)

// aclRoles creates, as the superuser, the tables of schema "acl" and prefix
// "app_" and the README's two roles: candidate with exactly the grants
// "Permissions" lists (no CREATE anywhere: Postgres 15 gives PUBLIC none on
// the schema public either), observer with SELECT on the tables. LISTEN
// and NOTIFY need no privilege.
func aclRoles(t *testing.T, srv interface{ Exec(testing.TB, string) }) {
	t.Helper()
	schema, err := Schema(Config{Schema: "acl", TablePrefix: "app_"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Exec(t, schema)
	srv.Exec(t, `CREATE ROLE candidate LOGIN;
GRANT USAGE ON SCHEMA acl TO candidate;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA acl TO candidate;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA acl TO candidate;
CREATE ROLE observer LOGIN;
GRANT USAGE ON SCHEMA acl TO observer;
GRANT SELECT ON ALL TABLES IN SCHEMA acl TO observer;`)
}

// roleURL is serverURL for role, on schema acl and prefix app_.
func roleURL(addr, role string, params url.Values) *url.URL {
	q := url.Values{"schema": {"acl"}, "table_prefix": {"app_"}}
	for k, v := range params {
		q[k] = v
	}
	u := serverURL(addr, q)
	u.User = url.User(role)
	return u
}

// wantDenied fails the test unless err is the typed permission error:
// ErrInvalidArgument (retrying cannot help), the server's 42501, and a
// message naming the grants (want).
func wantDenied(t *testing.T, what string, err error, want string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.Is(err, election.ErrInvalidArgument) || !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(err.Error(), want) {
		t.Errorf("%s = %v; want ErrInvalidArgument wrapping SQLSTATE 42501, naming %q", what, err, want)
	}
}

// TestACL: the trust model of the README. The candidate role (the grants
// "Permissions" lists, no CREATE) runs the whole lifecycle through the core;
// the observer role (SELECT) opens, follows every handoff, and is refused
// every write with a typed error, even through a session forged from the
// holder's session ID, which it can read; the candidate role can end any
// claim, token hash or not.
func TestACL(t *testing.T) {
	srv := startServer(t)
	aclRoles(t, srv)

	t.Run("CandidateLifecycle", func(t *testing.T) {
		ctx := testContext(t, 2*time.Minute)
		renewed := make(chan struct{}, 1)
		elector := func(role, id string, params url.Values, onEvent func(election.Event)) *election.Elector {
			t.Helper()
			params.Set("ttl", "2s")
			b, cfg, err := election.Open(ctx, roleURL(srv.Addr, role, params).String())
			if err != nil {
				t.Fatalf("Open as %s: %v", role, err)
			}
			t.Cleanup(func() { _ = election.CloseBackend(b) })
			cfg.OnEvent = onEvent
			el, err := election.New(b, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = el.Close(context.Background()) })
			return el
		}
		// The tables exist, so Open needs no CREATE even without no_create.
		alice := elector("candidate", "alice", url.Values{}, func(ev election.Event) {
			if ev.Kind == election.EventRenewed {
				select {
				case renewed <- struct{}{}:
				default:
				}
			}
		})
		bob := elector("candidate", "bob", url.Values{}, nil)
		olive := elector("observer", "olive", url.Values{"no_create": {"true"}}, nil)

		changes, err := olive.Observe(ctx, "job")
		if err != nil {
			t.Fatal(err)
		}
		// next returns the observer's next change with a leader (vacancies
		// in between are skipped) or, for want "", the next vacancy.
		next := func(want string) *election.Leader {
			t.Helper()
			for {
				select {
				case ch := <-changes:
					if want == "" && ch.Leader == nil {
						return nil
					}
					if want != "" && ch.Leader != nil {
						if ch.Leader.ID != want {
							t.Fatalf("the observer saw %s lead, want %s", ch.Leader.ID, want)
						}
						return ch.Leader
					}
				case <-ctx.Done():
					t.Fatalf("the observer saw no change to %q", want)
				}
			}
		}
		next("") // vacant at first

		ca, err := alice.NewCandidate(election.CandidateConfig{Name: "job", ID: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if err := ca.Start(ctx); err != nil {
			t.Fatalf("alice's Start: %v", err)
		}
		first := next("alice")
		select {
		case <-renewed:
		case <-ctx.Done():
			t.Fatal("alice's session was never renewed")
		}
		cb, err := bob.NewCandidate(election.CandidateConfig{Name: "job", ID: "bob"})
		if err != nil {
			t.Fatal(err)
		}
		if err := cb.Start(ctx); err != nil {
			t.Fatalf("bob's Start: %v", err)
		}
		if err := ca.Stop(ctx); err != nil {
			t.Fatalf("alice's Stop (release): %v", err)
		}
		second := next("bob")
		if second.Fence <= first.Fence {
			t.Errorf("bob's fence %d is not above alice's %d", second.Fence, first.Fence)
		}
		if err := cb.Stop(ctx); err != nil {
			t.Fatalf("bob's Stop (release): %v", err)
		}
		next("")
		for _, el := range []*election.Elector{alice, bob} { // ends the sessions: DELETE
			if err := el.Close(ctx); err != nil {
				t.Errorf("Close of a candidate's elector: %v", err)
			}
		}
	})

	t.Run("Observer", func(t *testing.T) {
		ctx := testContext(t, time.Minute)
		alice := newBackend(t, ctx, roleURL(srv.Addr, "candidate", nil))
		as := openSession(t, ctx, alice, 5*time.Second)
		held, err := as.Claim(ctx, request("acl", "alice"))
		if err != nil {
			t.Fatalf("Claim as the candidate: %v", err)
		}

		// Without no_create: the tables exist, so Open needs no CREATE.
		obs := newBackend(t, ctx, roleURL(srv.Addr, "observer", nil))
		if l, err := obs.Leader(ctx, "acl"); err != nil || l.ID != "alice" || l.Fence != held.Fence {
			t.Fatalf("Leader as the observer = %+v, %v; want alice at fence %d", l, err, held.Fence)
		}
		events, err := obs.Watch(ctx, "acl")
		if err != nil {
			t.Fatalf("Watch as the observer: %v", err)
		}
		nextEvent := func(what string) election.WatchEvent {
			t.Helper()
			select {
			case ev := <-events:
				if ev.Err != nil {
					t.Fatalf("%s: watch error %v", what, ev.Err)
				}
				return ev
			case <-ctx.Done():
				t.Fatalf("%s: no watch event", what)
				return election.WatchEvent{}
			}
		}
		if ev := nextEvent("first event"); ev.Leader == nil || ev.Leader.ID != "alice" {
			t.Fatalf("first watch event as the observer: %+v, want alice", ev.Leader)
		}

		_, err = obs.OpenSession(ctx, 5*time.Second)
		wantDenied(t, "OpenSession as the observer", err, "opening a session")
		t.Logf("OpenSession as the observer: %v", err)

		// The observer reads the holder's session ID (it may read the
		// tables) and forges a session of its own Backend with it; with the
		// holder's token in hand as well, every write is still refused.
		var sid string
		if err := obs.pool.QueryRow(ctx, `SELECT session_id FROM acl.app_claims WHERE name = 'acl'`).Scan(&sid); err != nil {
			t.Fatalf("reading the holder's session ID as the observer: %v", err)
		}
		forged := &session{backend: obs, id: sid, ttl: 5 * time.Second}
		_, err = forged.Claim(ctx, request("vacant", "olive"))
		wantDenied(t, "Claim of a vacant election as the observer", err, "claim writes the tables")
		_, err = forged.Claim(ctx, election.ClaimRequest{Name: "acl", ID: "olive", Token: held.Token})
		wantDenied(t, "Claim of alice's election with her session and token as the observer", err, "claim writes the tables")
		_, _, err = forged.Enqueue(ctx, request("acl", "olive"))
		wantDenied(t, "Enqueue behind alice as the observer", err, "a candidate's role needs")
		wantDenied(t, "Renew of alice's session as the observer", forged.Renew(ctx, []election.Claim{held}), "renew writes the tables")
		wantDenied(t, "Release of alice's claim (token known) as the observer", forged.Release(ctx, held), "release writes the tables")
		wantDenied(t, "Close of alice's session as the observer", forged.Close(ctx), "close session writes the tables")
		for _, raw := range []string{
			`UPDATE acl.app_sessions SET expires_at = clock_timestamp() WHERE id = $1`,
			`DELETE FROM acl.app_sessions WHERE id = $1`,
			`UPDATE acl.app_claims SET session_id = NULL WHERE session_id = $1`,
			`DELETE FROM acl.app_claims WHERE session_id = $1`,
			`INSERT INTO acl.app_claims (name, fence, session_id, format) VALUES ('other', 1, $1, 1)`,
			`SELECT nextval('acl.app_fences') WHERE $1::text IS NOT NULL`,
		} {
			_, err := obs.pool.Exec(ctx, raw, sid)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
				t.Errorf("as the observer, %s: %v; want SQLSTATE 42501", raw, err)
			}
		}

		if err := as.Renew(ctx, []election.Claim{held}); err != nil {
			t.Fatalf("alice's renewal after the observer's attempts: %v", err)
		}
		if l, err := obs.Leader(ctx, "acl"); err != nil || l.ID != "alice" || l.Fence != held.Fence {
			t.Fatalf("Leader after the observer's attempts = %+v, %v; want alice at fence %d still", l, err, held.Fence)
		}
		// The observer follows the handoff: a release, then the next claim.
		if err := as.Release(ctx, held); err != nil {
			t.Fatalf("alice's release: %v", err)
		}
		if ev := nextEvent("after the release"); ev.Leader != nil {
			t.Fatalf("watch event after the release: %+v, want vacant", ev.Leader)
		}
		bs := openSession(t, ctx, alice, 5*time.Second)
		again, err := bs.Claim(ctx, request("acl", "bob"))
		if err != nil {
			t.Fatal(err)
		}
		if ev := nextEvent("after the next claim"); ev.Leader == nil || ev.Leader.ID != "bob" || ev.Leader.Fence != again.Fence || again.Fence <= held.Fence {
			t.Fatalf("watch event after bob's claim: %+v, want bob at fence %d (> %d)", ev.Leader, again.Fence, held.Fence)
		}

		// Without no_create, on a prefix whose tables are missing, the
		// observer's Open is refused naming CREATE.
		_, err = OpenURL(ctx, roleURL(srv.Addr, "observer", url.Values{"table_prefix": {"missing_"}}))
		wantDenied(t, "Open as the observer where the tables are missing", err, "CREATE on the schema")
	})

	// Postgres checks no privilege for NOTIFY: any role that may connect
	// can announce on the channel. Claims and renewals never trust
	// announcements (the holder keeps its claim, a claim by another is
	// refused naming it), and a watch takes one as a hint to read: a forged
	// release naming a fence far above the real one must not make it drop
	// the real states that follow (it did: a waiter in line was promoted
	// by the store and never told, and nobody led).
	t.Run("ForgedAnnouncement", func(t *testing.T) {
		ctx := testContext(t, time.Minute)
		forge := func(obs *Backend, name string) {
			t.Helper()
			payload := `{"v":1,"kind":"release","name":"` + name + `","fence":999999}`
			if _, err := obs.pool.Exec(ctx, `SELECT pg_notify('acl.app_events', $1)`, payload); err != nil {
				t.Fatalf("NOTIFY as the observer: %v", err)
			}
		}
		alice := newBackend(t, ctx, roleURL(srv.Addr, "candidate", nil))
		as := openSession(t, ctx, alice, 5*time.Second)
		held, err := as.Claim(ctx, request("forged", "alice"))
		if err != nil {
			t.Fatal(err)
		}
		obs := newBackend(t, ctx, roleURL(srv.Addr, "observer", url.Values{"no_create": {"true"}}))
		events, err := obs.Watch(ctx, "forged")
		if err != nil {
			t.Fatal(err)
		}
		if ev := <-events; ev.Leader == nil || ev.Leader.ID != "alice" {
			t.Fatalf("first watch event %+v, want alice", ev.Leader)
		}
		forge(obs, "forged")
		bs := openSession(t, ctx, alice, 5*time.Second)
		var taken *election.TakenError
		if _, err := bs.Claim(ctx, request("forged", "bob")); !errors.As(err, &taken) || taken.Holder.ID != "alice" || taken.Holder.Fence != held.Fence {
			t.Fatalf("bob's claim after a forged release = %v, want taken by alice at fence %d", err, held.Fence)
		}
		if err := as.Renew(ctx, []election.Claim{held}); err != nil {
			t.Fatalf("alice's renewal after a forged release: %v", err)
		}
		if l, err := obs.Leader(ctx, "forged"); err != nil || l.ID != "alice" || l.Fence != held.Fence {
			t.Fatalf("Leader after a forged release = %+v, %v; want alice at fence %d", l, err, held.Fence)
		}
		// The watch still follows: alice releases, bob claims.
		if err := as.Release(ctx, held); err != nil {
			t.Fatal(err)
		}
		next, err := bs.Claim(ctx, request("forged", "bob"))
		if err != nil {
			t.Fatal(err)
		}
		for seen := false; !seen; {
			select {
			case ev := <-events:
				if ev.Err != nil {
					t.Fatalf("watch error %v", ev.Err)
				}
				seen = ev.Leader != nil && ev.Leader.ID == "bob" && ev.Leader.Fence == next.Fence
			case <-ctx.Done():
				t.Fatalf("after a forged release at fence 999999, the watch never showed bob's claim at fence %d", next.Fence)
			}
		}

		// Through the core: a waiter in line is promoted when the holder
		// releases, and must be told, forged release or not. The TTL is
		// long and the holder's session stays open: nothing but the
		// release's announcement can make bob lead.
		elector := func() *election.Elector {
			t.Helper()
			b, cfg, err := election.Open(ctx, roleURL(srv.Addr, "candidate", url.Values{"ttl": {"30s"}}).String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = election.CloseBackend(b) })
			el, err := election.New(b, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = el.Close(context.Background()) })
			return el
		}
		ea, eb := elector(), elector()
		ca, err := ea.NewCandidate(election.CandidateConfig{Name: "forged-line", ID: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		cb, err := eb.NewCandidate(election.CandidateConfig{Name: "forged-line", ID: "bob"})
		if err != nil {
			t.Fatal(err)
		}
		bobEvents := cb.Events()
		if err := ca.Start(ctx); err != nil || !ca.IsLeader() {
			t.Fatalf("alice's Start: %v (leader %v)", err, ca.IsLeader())
		}
		if err := cb.Start(ctx); err != nil {
			t.Fatal(err)
		}
		for waiting := false; !waiting; {
			select {
			case ev := <-bobEvents:
				waiting = ev.Kind == election.EventClaimTaken
			case <-ctx.Done():
				t.Fatal("bob never found the election taken")
			}
		}
		forge(obs, "forged-line")
		if err := ca.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		for !cb.IsLeader() {
			select {
			case <-bobEvents:
			case <-ctx.Done():
				t.Fatalf("bob never led after alice's release (forged release at fence 999999 before it); state %v", cb.State())
			}
		}
	})

	// A grant revoked under a holder: its renewals are refused with the
	// typed permission error (the core steps it down at its deadline; no
	// retry can help), and come back once the grant does.
	t.Run("Revoked", func(t *testing.T) {
		ctx := testContext(t, time.Minute)
		alice := newBackend(t, ctx, roleURL(srv.Addr, "candidate", nil))
		as := openSession(t, ctx, alice, 5*time.Second)
		held, err := as.Claim(ctx, request("revoked", "alice"))
		if err != nil {
			t.Fatal(err)
		}
		srv.Exec(t, `REVOKE UPDATE ON acl.app_sessions FROM candidate`)
		wantDenied(t, "Renew without UPDATE on the sessions table", as.Renew(ctx, []election.Claim{held}), "renew writes the tables")
		srv.Exec(t, `GRANT UPDATE ON acl.app_sessions TO candidate`)
		if err := as.Renew(ctx, []election.Claim{held}); err != nil {
			t.Fatalf("Renew once the grant is back: %v", err)
		}
	})

	// The token hash keeps a reader from releasing, not a writer: the
	// candidate role may UPDATE the claims table, so it can vacate anyone's
	// claim (or rewrite it) without the token; the holder learns at its
	// next renewal.
	t.Run("CandidateEndsOthersClaims", func(t *testing.T) {
		ctx := testContext(t, time.Minute)
		alice := newBackend(t, ctx, roleURL(srv.Addr, "candidate", nil))
		as := openSession(t, ctx, alice, 5*time.Second)
		held, err := as.Claim(ctx, request("victim", "alice"))
		if err != nil {
			t.Fatal(err)
		}
		mallory := newBackend(t, ctx, roleURL(srv.Addr, "candidate", nil))
		if _, err := mallory.pool.Exec(ctx, `UPDATE acl.app_claims SET session_id = NULL, token_hash = NULL, holder_id = NULL WHERE name = 'victim'`); err != nil {
			t.Fatalf("vacating alice's claim as another candidate: %v", err)
		}
		var notOwner *election.NotOwnerError
		if err := as.Renew(ctx, []election.Claim{held}); !errors.As(err, &notOwner) {
			t.Fatalf("alice's renewal after another candidate vacated her claim = %v, want a NotOwnerError", err)
		}
		ms := openSession(t, ctx, mallory, 5*time.Second)
		if c, err := ms.Claim(ctx, request("victim", "mallory")); err != nil || c.Fence <= held.Fence {
			t.Fatalf("mallory's claim after vacating = %+v, %v; want a fence above %d", c, err, held.Fence)
		}
	})
}
