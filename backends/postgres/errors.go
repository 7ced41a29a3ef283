package postgres

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/electionkit/election"
)

// errClosed is the native cause when a closed Backend is used.
var errClosed = errors.New("postgres: backend closed")

// storeError classifies an error from pgx for op (and the election name,
// when there is one) and wraps both the election sentinel and the native
// error:
//
//   - rejected credentials (SQLSTATE class 28), missing privileges (42501,
//     naming the grants op needs: grantsFor),
//     an unknown database (3D000), an unknown server setting (42704: a
//     misspelt URL parameter reaches the server as one), a missing table or schema (42P01,
//     3F000, with NoCreate) and a server certificate that fails
//     verification: retrying cannot help, so [election.ErrInvalidArgument];
//   - everything else, including timeouts, refused connections, a server
//     shutting down and serialization failures:
//     [election.ErrUnavailable], the outcome is unknown.
//
// pgx's errors name the user and database, never the password.
func storeError(op, name string, err error) error {
	what := "postgres: " + op
	if name != "" {
		what = fmt.Sprintf("postgres: %s %q", op, name)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case len(pgErr.Code) == 5 && pgErr.Code[:2] == "28":
			return fmt.Errorf("%s: %w: credentials rejected: %w", what, election.ErrInvalidArgument, err)
		case pgErr.Code == "42501":
			return fmt.Errorf("%s: %w: permission denied: %s: %w", what, election.ErrInvalidArgument, grantsFor(op), err)
		case pgErr.Code == "42704" && strings.Contains(pgErr.Message, "configuration parameter"):
			// pgx sends URL parameters it does not know to the server as
			// settings: a misspelt parameter of this package lands here.
			return fmt.Errorf("%s: %w: url: a parameter is neither pgx's nor this package's (%s, %s, %s, %s, %s, %s, %s), and the server has no such setting: %w",
				what, election.ErrInvalidArgument, paramSchema, paramTablePrefix, paramNoCreate, paramListenURL, paramListenCheck, paramSelfNotifyTimeout, paramLazy, err)
		case pgErr.Code == "3D000":
			return fmt.Errorf("%s: %w: no such database: %w", what, election.ErrInvalidArgument, err)
		case pgErr.Code == "42P01" || pgErr.Code == "3F000":
			return fmt.Errorf("%s: %w: the tables are missing (create them with schema.sql, or drop no_create): %w", what, election.ErrInvalidArgument, err)
		}
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return fmt.Errorf("%s: %w: server certificate rejected: %w", what, election.ErrInvalidArgument, err)
	}
	return fmt.Errorf("%s: %w: %w", what, election.ErrUnavailable, err)
}

// grantsFor names the privileges op needs, for a permission error: the
// README's "Permissions" (a candidate's grants; an observer's are SELECT
// on the tables, enough for Leader and Watch and nothing else). The
// server's own message, wrapped after it, names the table.
func grantsFor(op string) string {
	const candidate = "a candidate's role needs USAGE on the schema, SELECT, INSERT, UPDATE, DELETE on the prefix's tables and USAGE on its fences sequence"
	switch op {
	case "check tables", "read", "watch":
		return "the role needs USAGE on the schema and SELECT on the prefix's tables (an observer's grants)"
	case "create tables":
		return "creating the tables needs CREATE on the schema (on the database, for a new schema); or create them with schema.sql and set no_create"
	case "open session":
		return "opening a session writes the sessions table: " + candidate + " (an observer's role can follow a leader, not campaign)"
	case "claim", "enqueue", "renew", "release", "close session":
		return op + " writes the tables: " + candidate + " (an observer's role can follow a leader, not campaign)"
	default:
		return candidate
	}
}

// invalid returns an error wrapping [election.ErrInvalidArgument] that names
// the field.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("postgres: %w: %s: %s", election.ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}

// isServerError reports whether err is an error the server sent (the
// connection is still in sync), not a network or protocol failure.
func isServerError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}
