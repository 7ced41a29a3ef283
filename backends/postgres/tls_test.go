package postgres

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/teststore"
)

// TLS settings are pgx's own (sslmode, sslrootcert): verify-full against
// the server's CA opens and claims; a CA that did not sign the server's
// certificate is ErrInvalidArgument, "server certificate rejected".
func TestTLS(t *testing.T) {
	pki := teststore.NewPKI(t, "postgres")
	srv := teststore.StartPostgres(t, teststore.PostgresOptions{TLS: pki.TLS(false)})
	ctx := testContext(t, time.Minute)
	u := serverURL(srv.Addr, url.Values{"sslmode": {"verify-full"}, "sslrootcert": {pki.CAFile}})
	b := newBackend(t, ctx, u)
	s := openSession(t, ctx, b, time.Second)
	if _, err := s.Claim(ctx, request("tls", "a")); err != nil {
		t.Fatal(err)
	}
	other := teststore.NewPKI(t, "other")
	u = serverURL(srv.Addr, url.Values{"sslmode": {"verify-full"}, "sslrootcert": {other.CAFile}})
	_, err := OpenURL(ctx, u)
	if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "server certificate rejected") {
		t.Fatalf("a CA that did not sign the server's certificate: %v, want ErrInvalidArgument, server certificate rejected", err)
	}
}
