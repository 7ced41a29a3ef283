package postgres

import (
	"context"
	"errors"
	"net/url"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/urlopt"
)

func init() {
	election.Register("postgres", open)
	election.Register("postgresql", open)
}

func open(ctx context.Context, u *url.URL) (election.Backend, error) {
	return OpenURL(ctx, u)
}

// URL query parameters of this package; every other parameter goes to
// pgx's own parser (sslmode, sslrootcert, connect_timeout, pool_max_conns,
// default_query_exec_mode, and server settings such as search_path).
const (
	paramSchema            = "schema"              // Config.Schema
	paramTablePrefix       = "table_prefix"        // Config.TablePrefix
	paramNoCreate          = "no_create"           // Config.NoCreate, a Go bool
	paramListenURL         = "listen_url"          // Config.ListenConnString (secret: it may hold a password)
	paramListenCheck       = "listen_check"        // Config.ListenCheck, a Go duration
	paramSelfNotifyTimeout = "self_notify_timeout" // Config.SelfNotifyTimeout, a Go duration
	paramLazy              = "lazy"                // Config.Lazy, a Go bool
)

// OpenURL opens a Backend for a postgres:// or postgresql:// URL:
//
//	postgres://[user[:password]@]host[:port][/database][?param=value&...]
//
// The host, credentials, database, TLS settings (sslmode, sslrootcert,
// sslcert, sslkey, ...) and pgx's connection parameters are parsed by pgx.
// This package adds schema, table_prefix, no_create, listen_url,
// listen_check, self_notify_timeout and lazy (see [Config]; durations in
// Go syntax such as 500ms; listen_url is a URL-escaped connection string;
// lazy=true: Open does no I/O, the first use connects).
// Errors as [Open]'s; a malformed parameter gives
// [election.ErrInvalidArgument] naming every problem, and never shows a
// password.
func OpenURL(ctx context.Context, u *url.URL) (*Backend, error) {
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, invalid("url", "scheme %q is not postgres or postgresql", u.Scheme)
	}
	var cfg Config
	q := u.Query()
	err := urlopt.Take(q, invalid,
		urlopt.String(paramSchema, &cfg.Schema),
		urlopt.String(paramTablePrefix, &cfg.TablePrefix),
		urlopt.Bool(paramNoCreate, &cfg.NoCreate),
		urlopt.String(paramListenURL, &cfg.ListenConnString).Secret(),
		urlopt.Duration(paramListenCheck, &cfg.ListenCheck),
		urlopt.Duration(paramSelfNotifyTimeout, &cfg.SelfNotifyTimeout),
		urlopt.Bool(paramLazy, &cfg.Lazy),
	)
	if err := errors.Join(err, cfg.withDefaults().validate()); err != nil {
		return nil, err
	}
	rest := *u
	rest.RawQuery = q.Encode()
	return Open(ctx, rest.String(), cfg)
}
