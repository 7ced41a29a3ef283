package election

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/electionkit/election/internal/urlopt"
)

// Query parameters of a backend URL that configure the elector rather than
// the backend. [ParseURL] removes them before the backend's Opener sees the
// URL.
const (
	ParamTTL           = "ttl"
	ParamRenewInterval = "renew_interval"
	ParamDriftMargin   = "drift_margin"
	ParamRenewTimeout  = "renew_timeout"
	ParamOpTimeout     = "op_timeout"
)

// ParseURL splits a backend URL such as
//
//	etcd://h1:2379,h2:2379/prefix?ttl=10s&dial_timeout=2s
//
// into the elector settings it carries (ttl, renew_interval, drift_margin,
// renew_timeout, op_timeout, as Go durations) and the URL left for the
// backend. Every problem is
// reported at once, wrapping ErrInvalidArgument and naming the field.
func ParseURL(raw string) (Config, *url.URL, error) {
	var cfg Config
	if strings.TrimSpace(raw) == "" {
		return cfg, nil, invalid("url", "empty")
	}
	if !strings.Contains(raw, "://") {
		// url.Parse would answer "first path segment in URL cannot
		// contain colon" for 127.0.0.1:2379, or take "localhost" for a
		// scheme.
		// The input is not quoted: without a scheme nothing tells where a
		// password or token in it starts.
		return cfg, nil, invalid("url", "no \"scheme://\" in it: want etcd://HOST:PORT/PREFIX, redis://HOST:PORT, rediss://, consul://HOST:PORT, postgres://USER@HOST/DB or memory://NAME")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return cfg, nil, invalid("url", "%v", redactErr(err))
	}
	if u.Scheme == "" {
		return cfg, nil, invalid("url", "%q has no scheme (want etcd://, redis://, rediss://, consul://, postgres:// or memory://)", u.Redacted())
	}
	q := u.Query()
	err = urlopt.Take(q, invalid,
		positiveDuration(ParamTTL, &cfg.TTL),
		positiveDuration(ParamRenewInterval, &cfg.RenewInterval),
		positiveDuration(ParamDriftMargin, &cfg.DriftMargin),
		positiveDuration(ParamRenewTimeout, &cfg.RenewTimeout),
		positiveDuration(ParamOpTimeout, &cfg.OpTimeout))
	if err != nil {
		return Config{}, nil, err
	}
	u.RawQuery = q.Encode()
	return cfg, u, nil
}

// positiveDuration declares an elector duration parameter. It must be
// positive: in [Config] zero means "the default" and a negative duration
// means nothing, so a URL that gives either is a mistake.
func positiveDuration(name string, dst *time.Duration) urlopt.Param {
	return urlopt.Func(name, "a positive duration such as 10s", func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		if d <= 0 {
			return errors.New("not positive")
		}
		*dst = d
		return nil
	})
}

// redactErr drops the URL (which may hold a password) from a url.Error.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Open opens the backend a URL names, through the backend registered for
// its scheme (blank-import the backend package), and returns it with the
// elector settings the URL carries. Close the backend with [CloseBackend]
// when done. Errors name the field: an unknown scheme, a bad parameter, a
// missing credential (ErrInvalidArgument), or an unreachable store
// (ErrUnavailable).
//
// By default the etcd and Redis backends check the store before Open
// returns: it fails with ErrUnavailable, naming the address, once the
// URL's dial_timeout (default 5s) has passed without an answer, or sooner
// if ctx ends. With lazy=true in the URL every backend opens without I/O
// (Consul's and the in-process store always do), so that a program can
// start while its store is down: [Candidate.Start] tolerates store errors,
// reports them as events, and campaigns until the store answers. A lazy
// Open still rejects a malformed URL, but leaves wrong credentials and an
// unreachable address to the first claim's error.
func Open(ctx context.Context, rawURL string) (Backend, Config, error) {
	cfg, u, err := ParseURL(rawURL)
	if err != nil {
		return nil, Config{}, err
	}
	open, err := lookupDriver(u.Scheme)
	if err != nil {
		return nil, Config{}, err
	}
	b, err := open(ctx, u)
	if err != nil {
		return nil, Config{}, fmt.Errorf("election: open %s backend: %w", u.Scheme, err)
	}
	return b, cfg, nil
}

// Duration is a time.Duration that reads and writes as text such as "10s"
// in JSON, YAML and environment variables.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return invalid("duration", "%q is not a duration such as 10s", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText formats the duration as Go does ("10s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Settings is the configuration a service loads from its own config file
// (JSON or YAML) and environment. Zero fields take the defaults of
// [Config]; settings in the URL's query are overridden by the fields here
// when both are set.
type Settings struct {
	// URL names the backend: etcd://, redis://, rediss://, consul://,
	// memory://. Required.
	URL string `json:"url" yaml:"url"`
	// TTL, RenewInterval, DriftMargin, RenewTimeout and OpTimeout: see
	// [Config].
	TTL           Duration `json:"ttl,omitempty" yaml:"ttl,omitempty"`
	RenewInterval Duration `json:"renew_interval,omitempty" yaml:"renew_interval,omitempty"`
	DriftMargin   Duration `json:"drift_margin,omitempty" yaml:"drift_margin,omitempty"`
	RenewTimeout  Duration `json:"renew_timeout,omitempty" yaml:"renew_timeout,omitempty"`
	OpTimeout     Duration `json:"op_timeout,omitempty" yaml:"op_timeout,omitempty"`
	// ID identifies this process's candidates. Default: host, pid and a
	// random suffix.
	ID string `json:"id,omitempty" yaml:"id,omitempty"`
	// Metadata is shown to observers with this process's leaders.
	Metadata map[string]string `json:"metadata,omitempty" yaml:"metadata,omitempty"`
}

// Environment variables read by [Settings.FromEnv], after the prefix.
const (
	EnvURL           = "URL"
	EnvTTL           = "TTL"
	EnvRenewInterval = "RENEW_INTERVAL"
	EnvDriftMargin   = "DRIFT_MARGIN"
	EnvRenewTimeout  = "RENEW_TIMEOUT"
	EnvOpTimeout     = "OP_TIMEOUT"
	EnvID            = "ID"
)

// FromEnv returns s overridden by the environment variables prefix+URL,
// prefix+TTL, prefix+RENEW_INTERVAL, prefix+DRIFT_MARGIN,
// prefix+RENEW_TIMEOUT, prefix+OP_TIMEOUT and prefix+ID
// (for example ELECTION_URL with prefix "ELECTION_"). Set but empty
// variables are ignored. Errors name the variable: a duration that does
// not parse or is not positive (ELECTION_TTL=0s is a mistake, not "the
// default"), and a variable with the prefix whose name is a likely typo of
// one of these (ELECTION_TLL: "did you mean ELECTION_TTL?"). Other
// variables with the prefix are left alone: they may belong to something
// else.
func (s Settings) FromEnv(prefix string) (Settings, error) {
	var errs []error
	known := []string{EnvURL, EnvTTL, EnvRenewInterval, EnvDriftMargin, EnvRenewTimeout, EnvOpTimeout, EnvID}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || prefix == "" || slices.Contains(known, rest) {
			continue
		}
		if near, ok := urlopt.Suggest(rest, known); ok {
			errs = append(errs, invalid(name, "is not a setting; did you mean %s%s?", prefix, near))
		}
	}
	if v := os.Getenv(prefix + EnvURL); v != "" {
		s.URL = v
	}
	if v := os.Getenv(prefix + EnvID); v != "" {
		s.ID = v
	}
	for _, p := range []struct {
		name string
		dst  *Duration
	}{{EnvTTL, &s.TTL}, {EnvRenewInterval, &s.RenewInterval}, {EnvDriftMargin, &s.DriftMargin},
		{EnvRenewTimeout, &s.RenewTimeout}, {EnvOpTimeout, &s.OpTimeout}} {
		v := os.Getenv(prefix + p.name)
		if v == "" {
			continue
		}
		if err := p.dst.UnmarshalText([]byte(v)); err != nil || *p.dst <= 0 {
			errs = append(errs, invalid(prefix+p.name, "%q is not a positive duration such as 10s", v))
		}
	}
	return s, errors.Join(errs...)
}

// Open opens the backend s.URL names and returns it with the elector
// Config that s describes (URL query settings, then the fields of s).
// Close the backend with [CloseBackend].
func (s Settings) Open(ctx context.Context) (Backend, Config, error) {
	if s.URL == "" {
		return nil, Config{}, invalid("url", "missing: set Settings.URL (or the URL environment variable)")
	}
	b, cfg, err := Open(ctx, s.URL)
	if err != nil {
		return nil, Config{}, err
	}
	if s.TTL != 0 {
		cfg.TTL = time.Duration(s.TTL)
	}
	if s.RenewInterval != 0 {
		cfg.RenewInterval = time.Duration(s.RenewInterval)
	}
	if s.DriftMargin != 0 {
		cfg.DriftMargin = time.Duration(s.DriftMargin)
	}
	if s.RenewTimeout != 0 {
		cfg.RenewTimeout = time.Duration(s.RenewTimeout)
	}
	if s.OpTimeout != 0 {
		cfg.OpTimeout = time.Duration(s.OpTimeout)
	}
	cfg.ID, cfg.Metadata = s.ID, s.Metadata
	return b, cfg, nil
}
