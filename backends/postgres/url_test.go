package postgres

import (
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/teststore"
)

// Bad URLs and Configs are refused with ErrInvalidArgument naming every
// problem at once, before any I/O, and never quoting a password.
func TestOpenURLInvalid(t *testing.T) {
	ctx := testContext(t, time.Minute)
	for _, tc := range []struct {
		url  string
		want []string
	}{
		{"mysql://h/db", []string{`scheme "mysql"`}},
		{"postgres://127.0.0.1:1/db?schema=Bad-Name&table_prefix=9x", []string{"Schema", "TablePrefix"}},
		{"postgres://127.0.0.1:1/db?listen_check=soon&self_notify_timeout=-1s", []string{"listen_check", "SelfNotifyTimeout"}},
		{"postgres://127.0.0.1:1/db?no_create=maybe&listen_url=%25zz", []string{"no_create"}},
		{"postgres://127.0.0.1:1/db?table_prefix=" + strings.Repeat("p", 60), []string{"channel name", "above Postgres's 63"}},
		{"postgres://u:sekrit@127.0.0.1:1/db?sslmode=bogus", []string{"connection string"}},
		{"postgres://u:sekrit@127.0.0.1:99999999/db", []string{"connection string: cannot parse it: invalid port"}},
		{"postgres://127.0.0.1:1/db?listen_url=" + url.QueryEscape("postgres://u:sek rit@[::1/db"), []string{"ListenConnString: cannot parse it"}},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		_, err = OpenURL(ctx, u)
		if !errors.Is(err, election.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", tc.url, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to name %q", tc.url, err, w)
			}
		}
		if strings.Contains(err.Error(), "sekrit") {
			t.Errorf("%s: the error shows the password: %v", tc.url, err)
		}
	}
}

// election.Open reaches this package by scheme (postgres and postgresql),
// with the elector's ttl taken out of the query.
func TestElectionOpen(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	for _, scheme := range []string{"postgres", "postgresql"} {
		u := serverURL(srv.Addr, url.Values{"ttl": {"3s"}, "table_prefix": {"opened_"}})
		u.Scheme = scheme
		b, cfg, err := election.Open(ctx, u.String())
		if err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
		if cfg.TTL != 3*time.Second {
			t.Errorf("%s: ttl %v", scheme, cfg.TTL)
		}
		if err := election.CloseBackend(b); err != nil {
			t.Error(err)
		}
	}
	// pgx passes parameters it does not know to the server as settings.
	_, _, err := election.Open(ctx, serverURL(srv.Addr, url.Values{"tabel_prefix": {"x"}}).String())
	if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "tabel_prefix") || !strings.Contains(err.Error(), "table_prefix") {
		t.Fatalf("a misspelt parameter: %v, want ErrInvalidArgument naming it and the known ones", err)
	}
}

// Passwords are those pgx parses from the URL: the right one opens, a
// wrong one is ErrInvalidArgument (credentials rejected) and the error
// does not show it.
func TestPassword(t *testing.T) {
	srv := teststore.StartPostgres(t, teststore.PostgresOptions{Password: "right-horse"})
	ctx := testContext(t, time.Minute)
	u := serverURL(srv.Addr, nil)
	u.User = url.UserPassword("election", "wrong-battery")
	_, err := OpenURL(ctx, u)
	if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "credentials rejected") {
		t.Fatalf("wrong password: %v, want ErrInvalidArgument, credentials rejected", err)
	}
	if strings.Contains(err.Error(), "wrong-battery") {
		t.Fatalf("the error shows the password: %v", err)
	}
	u.User = url.UserPassword("election", "right-horse")
	b := newBackend(t, ctx, u)
	s := openSession(t, ctx, b, time.Second)
	if _, err := s.Claim(ctx, request("pw", "a")); err != nil {
		t.Fatal(err)
	}
}

// With no_create, Open checks the tables instead of creating them, and
// names what is missing; schema.sql, the migration, creates what Open
// would.
func TestNoCreateAndMigration(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, time.Minute)
	u := serverURL(srv.Addr, url.Values{"no_create": {"true"}})
	_, err := OpenURL(ctx, u)
	if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "schema.sql") {
		t.Fatalf("no_create without tables: %v, want ErrInvalidArgument naming schema.sql", err)
	}
	migration := readMigration(t)
	if want := schemaSQL(names(Config{}.withDefaults())); !strings.Contains(migration, want) {
		t.Fatalf("schema.sql does not hold what Open creates for the default names:\n%s", want)
	}
	srv.Exec(t, migration)
	b := newBackend(t, ctx, u)
	s := openSession(t, ctx, b, time.Second)
	if _, err := s.Claim(ctx, request("migrated", "a")); err != nil {
		t.Fatal(err)
	}
}

func readMigration(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
