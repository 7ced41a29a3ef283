package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"

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
	paramLazy              = "lazy"               // a Go bool: OpenURL sends no PING
)

// OpenURL opens a Backend for a redis:// or rediss:// (TLS) URL:
//
//	redis://[user[:password]@]host[:port][/db][?param=value&...]
//
// The host, credentials, database and go-redis's connection parameters
// (dial_timeout, read_timeout, pool_size, protocol, client_name, ...) are
// parsed by go-redis's own redis.ParseURL. This package adds prefix,
// quarantine, no_quarantine, wait_replicas, wait_timeout and
// subscription_check (see [Config]; durations in Go syntax such as 500ms),
// and lazy.
//
// The client honours context deadlines (go-redis ContextTimeoutEnabled), so
// that the core's deadlines bound every call. The Backend owns its client;
// [Backend.Close] closes it.
//
// OpenURL checks the server with a PING, which with go-redis's retries
// gives up after at most dial_timeout (go-redis's default 5s) or when ctx
// ends, whichever comes first: rejected credentials give an error wrapping
// [election.ErrInvalidArgument], an unreachable server one wrapping
// [election.ErrUnavailable] that names its address. With lazy=true OpenURL
// sends nothing and returns at once: a server that is down, or rejects the
// credentials, shows up in the first claim's error instead (the elector's
// Start tolerates that and campaigns until the server answers). An
// unknown parameter, a malformed value or an invalid [Config] gives
// [election.ErrInvalidArgument] naming every problem, lazy or not.
func OpenURL(ctx context.Context, u *url.URL) (*Backend, error) {
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, invalid("url", "scheme %q is not redis or rediss", u.Scheme)
	}
	cfg, lazy, rest, paramErr := splitParams(u)
	opts, err := goredis.ParseURL(rest.String())
	if err != nil {
		err = explainOption(rest.Query(), fmt.Errorf("redis: %w: url: %w", election.ErrInvalidArgument, err))
	}
	if err == nil && opts.DialTimeout < 0 {
		// go-redis reads 0 or less as "no timeout" and then gives its
		// net.Dialer a negative timeout, which fails every dial at once.
		err = invalid("url dial_timeout", "0 or less makes go-redis fail every dial at once; give a positive duration such as 5s")
	}
	if err := errors.Join(paramErr, err, cfg.withDefaults().validateFields()); err != nil {
		return nil, err
	}
	// The core bounds every store call with a context deadline; go-redis
	// honours it only with ContextTimeoutEnabled (its own read timeout of
	// 3s, times retries, could otherwise outlast a leader's deadline).
	opts.ContextTimeoutEnabled = true
	client := goredis.NewClient(opts)
	dials := &dialErrors{}
	client.AddHook(dials)
	b, err := New(client, cfg)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	b.ownsClient = true
	if lazy {
		return b, nil
	}
	if err := ping(ctx, client, dials); err != nil {
		_ = b.Close()
		return nil, storeError("open "+u.Scheme+"://"+client.Options().Addr, "", err)
	}
	return b, nil
}

// ping checks the server within the client's dial timeout. go-redis
// applies DialTimeout to each of its dial attempts and retries both the
// dial and the command, so that a refused connection alone took 1.7s
// whatever DialTimeout said; the context makes DialTimeout the bound of
// the whole check. When the timeout ends it, the error says why the last
// dial failed, which go-redis replaces with the context's error.
func ping(ctx context.Context, client *goredis.Client, dials *dialErrors) error {
	timeout := client.Options().DialTimeout // go-redis's default when the URL has none
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := client.Ping(pctx).Err()
	if err == nil || pctx.Err() == nil || ctx.Err() != nil {
		return err
	}
	if last := dials.last.Load(); last != nil && !errors.Is(err, *last) {
		return fmt.Errorf("no answer within dial_timeout %v (last dial: %v): %w", timeout, *last, err)
	}
	return fmt.Errorf("no answer within dial_timeout %v: %w", timeout, err)
}

// dialErrors is a go-redis hook that keeps the client's last dial error.
type dialErrors struct {
	last atomic.Pointer[error]
}

func (d *dialErrors) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			d.last.Store(&err)
		}
		return conn, err
	}
}

func (d *dialErrors) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook { return next }

func (d *dialErrors) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// goRedisParams are the query parameters go-redis v9's redis.ParseURL
// reads. They serve only to explain an option it rejects: a name missing
// here but known to a later go-redis is still accepted, by go-redis.
var goRedisParams = []string{
	"client_name", "conn_max_idle_time", "conn_max_lifetime", "conn_max_lifetime_jitter", "db",
	"dial_timeout", "idle_timeout", "max_active_conns", "max_concurrent_dials", "max_conn_age",
	"max_idle_conns", "max_retries", "max_retry_backoff", "min_idle_conns", "min_retry_backoff",
	"pipeline_pool_size", "pipeline_read_buffer_size", "pipeline_write_buffer_size", "pool_fifo",
	"pool_size", "pool_timeout", "protocol", "read_timeout", "skip_verify", "write_timeout",
}

// explainOption replaces err, go-redis's "unexpected option: X", with the
// error every other backend gives for an unknown parameter: the known ones
// (this package's, go-redis's and the elector's) and the nearest one ("did
// you mean lazy?"). Any other error of go-redis is returned as is.
func explainOption(q url.Values, err error) error {
	if !strings.Contains(err.Error(), "unexpected option") {
		return err
	}
	var ignored string
	var params []urlopt.Param
	for _, name := range append([]string{paramPrefix, paramQuarantine, paramNoQuarantine, paramWaitReplicas,
		paramWaitTimeout, paramSubscriptionCheck, paramLazy}, goRedisParams...) {
		params = append(params, urlopt.String(name, &ignored))
	}
	if known := urlopt.Parse(q, invalid, params...); known != nil {
		return known
	}
	return err
}

// splitParams takes this package's parameters out of u. It returns the
// Config they describe, whether lazy is set, a copy of u without them, and
// every malformed value at once.
func splitParams(u *url.URL) (cfg Config, lazy bool, rest *url.URL, err error) {
	q := u.Query()
	err = urlopt.Take(q, invalid,
		urlopt.String(paramPrefix, &cfg.Prefix),
		urlopt.Duration(paramQuarantine, &cfg.Quarantine),
		urlopt.Bool(paramNoQuarantine, &cfg.NoQuarantine),
		urlopt.Int(paramWaitReplicas, &cfg.WaitReplicas),
		urlopt.Duration(paramWaitTimeout, &cfg.WaitTimeout),
		urlopt.Duration(paramSubscriptionCheck, &cfg.SubscriptionCheck),
		urlopt.Bool(paramLazy, &lazy),
	)
	r := *u
	r.RawQuery = q.Encode()
	return cfg, lazy, &r, err
}
