package consul

import (
	"context"
	"errors"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/electionkit/election"
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

// urlParams maps each query parameter OpenURL knows to the Config field it
// sets.
var urlParams = map[string]func(c *Config, v string) error{
	"token":        func(c *Config, v string) error { c.Token = v; return nil },
	"token_file":   func(c *Config, v string) error { c.TokenFile = v; return nil },
	"dc":           func(c *Config, v string) error { c.Datacenter = v; return nil },
	"ns":           func(c *Config, v string) error { c.Namespace = v; return nil },
	"partition":    func(c *Config, v string) error { c.Partition = v; return nil },
	"prefix":       func(c *Config, v string) error { c.Prefix = v; return nil },
	"session_name": func(c *Config, v string) error { c.SessionName = v; return nil },
	"ca_file":      func(c *Config, v string) error { c.TLS.CAFile = v; return nil },
	"ca_path":      func(c *Config, v string) error { c.TLS.CAPath = v; return nil },
	"cert_file":    func(c *Config, v string) error { c.TLS.CertFile = v; return nil },
	"key_file":     func(c *Config, v string) error { c.TLS.KeyFile = v; return nil },
	"tls_server_name": func(c *Config, v string) error {
		c.TLS.ServerName = v
		return nil
	},
	"tls": func(c *Config, v string) error {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return err
		}
		if on {
			c.Scheme = "https"
		} else {
			c.Scheme = "http"
		}
		return nil
	},
	"insecure_skip_verify": func(c *Config, v string) error {
		on, err := strconv.ParseBool(v)
		c.TLS.InsecureSkipVerify = on
		return err
	},
	"min_ttl":    durationParam(func(c *Config) *time.Duration { return &c.MinTTL }),
	"lock_delay": durationParam(func(c *Config) *time.Duration { return &c.LockDelay }),
	"wait":       durationParam(func(c *Config) *time.Duration { return &c.WatchWait }),
}

func durationParam(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		*field(c) = d
		return err
	}
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
// "1s"). A token in a URL ends up in logs and process listings: prefer
// token_file or CONSUL_HTTP_TOKEN.
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
	q := u.Query()
	var unknown []string
	for _, name := range sortedKeys(q) {
		set, ok := urlParams[name]
		switch {
		case !ok:
			unknown = append(unknown, name)
		case len(q[name]) > 1:
			errs = append(errs, invalid("url", "parameter %q is repeated", name))
		default:
			if err := set(&cfg, q[name][0]); err != nil {
				errs = append(errs, invalid("url", "parameter %s=%q: %v", name, q[name][0], err))
			}
		}
	}
	if len(unknown) > 0 {
		errs = append(errs, invalid("url", "unknown parameters %s (known: %s)",
			strings.Join(unknown, ", "), strings.Join(sortedKeys(urlParams), ", ")))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return New(cfg)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
