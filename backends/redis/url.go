package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/urlopt"
)

func init() {
	election.Register("redis", open)
	election.Register("rediss", open)
}

func open(ctx context.Context, u *url.URL) (election.Backend, error) {
	return OpenURL(ctx, u)
}

// URL query parameters of this package; every other parameter goes to
// go-redis's own parser (redis.ParseURL), which rejects those it does not
// know.
const (
	paramPrefix            = "prefix"             // Config.Prefix
	paramQuarantine        = "quarantine"         // Config.Quarantine, a Go duration
	paramNoQuarantine      = "no_quarantine"      // Config.NoQuarantine, a Go bool
	paramWaitReplicas      = "wait_replicas"      // Config.WaitReplicas
	paramWaitTimeout       = "wait_timeout"       // Config.WaitTimeout, a Go duration
	paramSubscriptionCheck = "subscription_check" // Config.SubscriptionCheck, a Go duration
)

// OpenURL opens a Backend for a redis:// or rediss:// (TLS) URL:
//
//	redis://[user[:password]@]host[:port][/db][?param=value&...]
//
// The host, credentials, database and go-redis's connection parameters
// (dial_timeout, read_timeout, pool_size, protocol, client_name, ...) are
// parsed by go-redis's own redis.ParseURL. This package adds prefix,
// quarantine, no_quarantine, wait_replicas, wait_timeout and
// subscription_check (see [Config]; durations in Go syntax such as 500ms).
//
// The client honours context deadlines (go-redis ContextTimeoutEnabled), so
// that the core's deadlines bound every call. The Backend owns its client;
// [Backend.Close] closes it. OpenURL checks
// the server with a PING: rejected credentials give an error wrapping
// [election.ErrInvalidArgument], an unreachable server one wrapping
// [election.ErrUnavailable]. An unknown parameter, a malformed value or an
// invalid [Config] gives [election.ErrInvalidArgument] naming every problem.
func OpenURL(ctx context.Context, u *url.URL) (*Backend, error) {
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, invalid("url", "scheme %q is not redis or rediss", u.Scheme)
	}
	cfg, rest, paramErr := splitParams(u)
	opts, err := goredis.ParseURL(rest.String())
	if err != nil {
		err = fmt.Errorf("redis: %w: url: %w", election.ErrInvalidArgument, err)
	}
	if err := errors.Join(paramErr, err, cfg.withDefaults().validateFields()); err != nil {
		return nil, err
	}
	// The core bounds every store call with a context deadline; go-redis
	// honours it only with ContextTimeoutEnabled (its own read timeout of
	// 3s, times retries, could otherwise outlast a leader's deadline).
	opts.ContextTimeoutEnabled = true
	client := goredis.NewClient(opts)
	b, err := New(client, cfg)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	b.ownsClient = true
	if err := client.Ping(ctx).Err(); err != nil {
		_ = b.Close()
		return nil, storeError("open "+redactedHost(u), "", err)
	}
	return b, nil
}

// splitParams takes this package's parameters out of u. It returns the
// Config they describe, a copy of u without them, and every malformed value
// at once.
func splitParams(u *url.URL) (Config, *url.URL, error) {
	var cfg Config
	q := u.Query()
	err := urlopt.Take(q, invalid,
		urlopt.String(paramPrefix, &cfg.Prefix),
		urlopt.Duration(paramQuarantine, &cfg.Quarantine),
		urlopt.Bool(paramNoQuarantine, &cfg.NoQuarantine),
		urlopt.Int(paramWaitReplicas, &cfg.WaitReplicas),
		urlopt.Duration(paramWaitTimeout, &cfg.WaitTimeout),
		urlopt.Duration(paramSubscriptionCheck, &cfg.SubscriptionCheck),
	)
	rest := *u
	rest.RawQuery = q.Encode()
	return cfg, &rest, err
}

// redactedHost names the server of u without credentials.
func redactedHost(u *url.URL) string {
	return u.Scheme + "://" + u.Host
}
