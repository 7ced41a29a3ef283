package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/electionkit/election"
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
)

var knownParams = []string{paramDialTimeout, paramUsername, paramPassword, paramTLS, paramCAFile, paramCertFile, paramKeyFile}

// OpenURL opens a [Backend] for a URL of the form
//
//	etcd://[user:password@]host1:2379,host2:2379[/prefix][?param=value&...]
//
// The hosts are the endpoints; the path without its leading '/' is the
// prefix (default [DefaultPrefix]). Query parameters: dial_timeout (a Go
// duration), username and password (or the URL's user info, not both),
// tls=true (TLS with the system roots), ca_file, cert_file and key_file
// (each implies TLS). ctx bounds the connection check together with the
// dial timeout.
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
	var unknown []string
	for k, vs := range q {
		if !slices.Contains(knownParams, k) {
			unknown = append(unknown, k)
		} else if len(vs) > 1 {
			errs = append(errs, invalid(k, "given %d times", len(vs)))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		errs = append(errs, invalid("url", "unknown query parameters: %s (known: %s)",
			strings.Join(unknown, ", "), strings.Join(knownParams, ", ")))
	}
	if v := q.Get(paramDialTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, invalid(paramDialTimeout, "%q: %v", v, err))
		}
		cfg.DialTimeout = d
	}
	cfg.Username, cfg.Password = q.Get(paramUsername), q.Get(paramPassword)
	if u.User != nil {
		if q.Has(paramUsername) || q.Has(paramPassword) {
			errs = append(errs, invalid(paramUsername, "given both in the URL's user info and as a parameter"))
		}
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile = q.Get(paramCAFile), q.Get(paramCertFile), q.Get(paramKeyFile)
	if v := q.Get(paramTLS); v != "" {
		on, err := strconv.ParseBool(v)
		switch {
		case err != nil:
			errs = append(errs, invalid(paramTLS, "%q is not a boolean", v))
		case !on && !cfg.TLS.isZero():
			errs = append(errs, invalid(paramTLS, "false, but ca_file, cert_file or key_file is set"))
		case on && cfg.TLS.isZero():
			cfg.TLS.Config = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	return cfg, errors.Join(errs...)
}
