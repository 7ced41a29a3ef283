package redis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
)

// errClosed is the native cause when a closed Backend is used.
var errClosed = errors.New("redis: backend closed")

// storeError classifies an error from go-redis for op (and the election name,
// when there is one) and wraps both the election sentinel and the native
// error, so that errors.Is finds either:
//
//   - authentication and permission failures (NOAUTH, WRONGPASS, NOPERM),
//     a server certificate that fails verification, and a database index
//     the server does not have: retrying cannot help, so
//     [election.ErrInvalidArgument];
//   - everything else, including timeouts, refused connections and closed
//     clients: [election.ErrUnavailable], the outcome is unknown.
func storeError(op, name string, err error) error {
	what := "redis: " + op
	if name != "" {
		what = fmt.Sprintf("redis: %s %q", op, name)
	}
	if goredis.IsAuthError(err) || goredis.IsPermissionError(err) {
		return fmt.Errorf("%s: %w: credentials rejected: %w", what, election.ErrInvalidArgument, err)
	}
	if msg := err.Error(); strings.Contains(msg, "DB index is out of range") || strings.Contains(msg, "invalid DB index") {
		// The server has fewer databases (its "databases" setting) than
		// the URL's path asks for: a configuration error, not an outage.
		return fmt.Errorf("%s: %w: db: the server has no such database (see its \"databases\" setting): %w", what, election.ErrInvalidArgument, err)
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return fmt.Errorf("%s: %w: server certificate rejected: %w", what, election.ErrInvalidArgument, err)
	}
	return fmt.Errorf("%s: %w: %w", what, election.ErrUnavailable, err)
}

// invalid returns an error wrapping [election.ErrInvalidArgument] that names
// the field.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("redis: %w: %s: %s", election.ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}

// isNoScript reports whether err means the server's script cache lacks the
// script (it restarted or was flushed), so it must be sent whole.
func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, goredis.ErrNoScript) || goredis.HasErrorPrefix(err, "NOSCRIPT"))
}
