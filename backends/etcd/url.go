package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/urlopt"
)

// Scheme is the URL scheme this package registers with election.Register.
const Scheme = "etcd"

func init() {
	election.Register(Scheme, func(ctx context.Context, u *url.URL) (election.Backend, error) {
		b, err := OpenURL(ctx, u)
		if err != nil {
			return nil, err
		}
		return b, nil
	})
}

// URL query parameters understood by [OpenURL].
const (
	paramDialTimeout = "dial_timeout" // Config.DialTimeout, a Go duration ("2s")
	paramUsername    = "username"     // Config.Username
	paramPassword    = "password"     // Config.Password
	paramTLS         = "tls"          // "true": TLS with the system roots
	paramCAFile      = "ca_file"      // Config.TLS.CAFile (implies TLS)
	paramCertFile    = "cert_file"    // Config.TLS.CertFile (implies TLS)
	paramKeyFile     = "key_file"     // Config.TLS.KeyFile (implies TLS)
	paramLazy        = "lazy"         // Config.Lazy, a Go bool
)

// OpenURL opens a [Backend] for a URL of the form
//
//	etcd://[user:password@]host1:2379,host2:2379[/prefix][?param=value&...]
//
// The hosts are the endpoints; the path without its leading '/' is the
// prefix (default [DefaultPrefix]). Query parameters: dial_timeout (a Go
// duration), username and password (or the URL's user info, not both),
// tls=true (TLS with the system roots), ca_file, cert_file and key_file
// (each implies TLS), lazy=true ([Config.Lazy]: no connection check). An
// empty dial_timeout, tls or lazy is malformed, not left out. ctx bounds
// the connection check together with the dial timeout.
//
// Errors: like [New]; an unknown or repeated parameter, or a malformed
// value, is reported with election.ErrInvalidArgument naming it, all
// problems at once.
func OpenURL(ctx context.Context, u *url.URL) (*Backend, error) {
	cfg, err := configFromURL(u)
	if err != nil {
		return nil, err
	}
	return open(ctx, cfg)
}

func configFromURL(u *url.URL) (Config, error) {
	var cfg Config
	var errs []error
	if u.Scheme != Scheme {
		errs = append(errs, invalid("url", "scheme %q is not %q", u.Scheme, Scheme))
	}
	if u.Opaque != "" || u.Fragment != "" {
		errs = append(errs, invalid("url", "want %s://host:port[,host:port]/prefix?params", Scheme))
	}
	if u.Host == "" {
		errs = append(errs, invalid("url", "no host"))
	} else {
		cfg.Endpoints = strings.Split(u.Host, ",")
	}
	cfg.Prefix = strings.TrimPrefix(u.Path, "/")

	q := u.Query()
	var tlsOn, tlsGiven bool
	errs = append(errs, urlopt.Parse(q, invalid,
		// Zero in Config means "the default"; in a URL it is a mistake.
		urlopt.Func(paramDialTimeout, "a positive duration such as 2s", func(v string) error {
			d, err := time.ParseDuration(v)
			if err == nil && d <= 0 {
				err = errors.New("not positive")
			}
			cfg.DialTimeout = d
			return err
		}),
		urlopt.String(paramUsername, &cfg.Username),
		urlopt.String(paramPassword, &cfg.Password).Secret(),
		urlopt.Bool(paramTLS, &tlsOn).Seen(&tlsGiven),
		urlopt.String(paramCAFile, &cfg.TLS.CAFile),
		urlopt.String(paramCertFile, &cfg.TLS.CertFile),
		urlopt.String(paramKeyFile, &cfg.TLS.KeyFile),
		urlopt.Bool(paramLazy, &cfg.Lazy),
	))
	if u.User != nil {
		if q.Has(paramUsername) || q.Has(paramPassword) {
			errs = append(errs, invalid("url "+paramUsername, "given both in the URL's user info and as a parameter"))
		}
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	switch {
	case !tlsGiven:
	case !tlsOn && !cfg.TLS.isZero():
		errs = append(errs, invalid("url "+paramTLS, "false, but ca_file, cert_file or key_file is set"))
	case tlsOn && cfg.TLS.isZero():
		cfg.TLS.Config = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return cfg, errors.Join(errs...)
}
