package postgres

import (
	"context"
	"net/url"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/teststore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer starts a postgres for the test, killed when it ends.
func startServer(t testing.TB) *teststore.Postgres {
	t.Helper()
	return teststore.StartPostgres(t, teststore.PostgresOptions{})
}

// serverURL is a postgres:// URL of the user postgres at addr, with this
// package's params.
func serverURL(addr string, params url.Values) *url.URL {
	q := url.Values{"sslmode": {"disable"}, "connect_timeout": {"10"}}
	for k, v := range params {
		q[k] = v
	}
	return &url.URL{Scheme: "postgres", User: url.User("postgres"), Host: addr, Path: "/postgres", RawQuery: q.Encode()}
}

// newBackend opens a Backend on u, closed by the test's cleanup.
func newBackend(t testing.TB, ctx context.Context, u *url.URL) *Backend {
	t.Helper()
	b, err := OpenURL(ctx, u)
	if err != nil {
		t.Fatalf("OpenURL: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func openSession(t testing.TB, ctx context.Context, b *Backend, ttl time.Duration) election.Session {
	t.Helper()
	s, err := b.OpenSession(ctx, ttl)
	if err != nil {
		t.Fatalf("OpenSession(%v): %v", ttl, err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func request(name, id string) election.ClaimRequest {
	return election.ClaimRequest{Name: name, ID: id, Token: "token-of-" + id + "-" + name}
}
