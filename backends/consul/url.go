package consul

import (
	"context"
	"errors"
	"net/url"
	"strconv"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/urlopt"
)

// Scheme is the URL scheme this package registers with [election.Register].
const Scheme = "consul"

func init() {
	election.Register(Scheme, func(ctx context.Context, u *url.URL) (election.Backend, error) {
		b, err := OpenURL(ctx, u)
		if err != nil {
			return nil, err // not a typed nil *Backend in the interface
		}
		return b, nil
	})
}

// OpenURL returns a Backend for a URL of the form
//
//	consul://[host:port][?param=value&...]
//
// The host is the agent's HTTP address; without it, CONSUL_HTTP_ADDR or
// localhost:8500 is used, and every other setting left out of the URL also
// falls back to its CONSUL_* environment variable (see [Config]). Parameters:
// token, token_file, dc, ns, partition, prefix, session_name, tls (true for
// HTTPS), ca_file, ca_path, cert_file, key_file, tls_server_name,
// insecure_skip_verify, min_ttl, lock_delay and wait (Go durations, e.g.
// "1s"; lock_delay=none is NoLockDelay), and lazy=true, which changes
// nothing here: unlike the etcd and Redis backends, this one never
// contacts the agent when it opens (an
// unreachable agent shows up in the first claim's error, which the
// elector's Start tolerates), and lazy=false is refused rather than
// silently ignored. A token in a URL ends up in logs and process listings:
// prefer token_file or CONSUL_HTTP_TOKEN.
//
// Every problem (an unknown or repeated parameter, a bad value, a path or
// user info) is reported at once in an error wrapping
// [election.ErrInvalidArgument]. OpenURL does no I/O.
func OpenURL(_ context.Context, u *url.URL) (*Backend, error) {
	var cfg Config
	var errs []error
	if u.Scheme != Scheme {
		errs = append(errs, invalid("url", "scheme %q is not %q", u.Scheme, Scheme))
	}
	if u.User != nil {
		errs = append(errs, invalid("url", "user info is not supported; pass token or token_file"))
	}
	if u.Path != "" && u.Path != "/" || u.Opaque != "" {
		errs = append(errs, invalid("url", "path %q is not supported; pass prefix", u.Path+u.Opaque))
	}
	cfg.Address = u.Host
	var tlsOn, tlsGiven bool
	errs = append(errs, urlopt.Parse(u.Query(), invalid,
		urlopt.String("token", &cfg.Token).Secret(),
		urlopt.String("token_file", &cfg.TokenFile),
		urlopt.String("dc", &cfg.Datacenter),
		urlopt.String("ns", &cfg.Namespace),
		urlopt.String("partition", &cfg.Partition),
		urlopt.String("prefix", &cfg.Prefix),
		urlopt.String("session_name", &cfg.SessionName),
		urlopt.Bool("tls", &tlsOn).Seen(&tlsGiven),
		urlopt.String("ca_file", &cfg.TLS.CAFile),
		urlopt.String("ca_path", &cfg.TLS.CAPath),
		urlopt.String("cert_file", &cfg.TLS.CertFile),
		urlopt.String("key_file", &cfg.TLS.KeyFile),
		urlopt.String("tls_server_name", &cfg.TLS.ServerName),
		urlopt.Bool("insecure_skip_verify", &cfg.TLS.InsecureSkipVerify),
		urlopt.Duration("min_ttl", &cfg.MinTTL),
		urlopt.DurationOr("lock_delay", &cfg.LockDelay, "none", NoLockDelay),
		urlopt.Duration("wait", &cfg.WatchWait),
		urlopt.Func("lazy", "true: a consul:// URL always opens without contacting the agent", func(v string) error {
			if lazy, err := strconv.ParseBool(v); err != nil || !lazy {
				return errors.New("not true")
			}
			return nil
		}),
	))
	if tlsGiven {
		// An explicit tls=false is kept as "http", which wins over
		// CONSUL_HTTP_SSL; left out, the environment decides.
		cfg.Scheme = "http"
		if tlsOn {
			cfg.Scheme = "https"
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return New(cfg)
}
