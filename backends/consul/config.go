package consul

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

// Defaults applied by [New] to zero fields of [Config].
const (
	// DefaultPrefix is the key prefix when Config.Prefix is empty.
	DefaultPrefix = "electionkit"
	// DefaultMinTTL is the smallest session TTL a Consul server accepts
	// unless its session_ttl_min is lowered.
	DefaultMinTTL = 10 * time.Second
	// MaxTTL is the largest session TTL Consul accepts (86400s).
	MaxTTL = 24 * time.Hour
	// MaxLockDelay is the largest lock-delay Consul accepts.
	MaxLockDelay = 60 * time.Second
	// NoLockDelay, as Config.LockDelay, creates sessions without a
	// lock-delay (see Config.LockDelay for what that gives up).
	NoLockDelay time.Duration = -1
	// DefaultWatchWait is how long one blocking query of a watch waits for
	// a change when Config.WatchWait is zero.
	DefaultWatchWait = 30 * time.Second
	// MaxWatchWait is the longest wait Consul honours for a blocking query.
	MaxWatchWait = 10 * time.Minute
	// maxAgentConns is the most HTTP connections a Backend that builds its
	// own client opens to the agent: one per bucket for the watches' blocking
	// queries, twice that again for claims, renewals and reads. The agent
	// refuses more than 200 (http_max_conns_per_client) from one address,
	// which every process on the host shares.
	maxAgentConns = 3 * bucketCount
	// DefaultSessionName names the Consul sessions when Config.SessionName
	// is empty; operators see it in `consul` session listings.
	DefaultSessionName = "electionkit"
)

// Config configures a [Backend]. The zero value of every field means its
// documented default. Connection fields left empty are taken from the
// standard CONSUL_HTTP_* environment variables, as the consul CLI and
// api.DefaultConfig do; a field that is set always wins over the
// environment. [New] validates the result once and reports every problem at
// once; it never replaces a value it finds wrong.
type Config struct {
	// Address is the agent's HTTP API: "host:port", "http://host:port",
	// "https://host:port" or "unix:///path/to/socket". Default
	// CONSUL_HTTP_ADDR, else "localhost:8500".
	Address string

	// Scheme is "http" or "https". Default "https" when CONSUL_HTTP_SSL is
	// true or Address starts with "https://", else "http". Setting "http"
	// together with an "https://" Address is rejected.
	Scheme string

	// Token is the ACL token sent with every request. At most one of Token
	// and TokenFile. Default: the contents of CONSUL_HTTP_TOKEN_FILE, else
	// CONSUL_HTTP_TOKEN, else none (the agent's default token applies). A
	// token the servers reject makes every operation fail with an error
	// wrapping election.ErrInvalidArgument.
	Token string

	// TokenFile is a file holding the ACL token, read once by [New].
	TokenFile string

	// Datacenter is the Consul datacenter to use. Default: the agent's.
	Datacenter string

	// Namespace and Partition select a Consul Enterprise namespace and
	// admin partition. Default CONSUL_NAMESPACE and CONSUL_PARTITION, else
	// the token's defaults. A Community Edition server rejects them.
	Namespace string
	Partition string

	// TLS configures HTTPS. Zero fields fall back to CONSUL_CACERT,
	// CONSUL_CAPATH, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY,
	// CONSUL_TLS_SERVER_NAME and CONSUL_HTTP_SSL_VERIFY.
	TLS TLSConfig

	// Client is an existing client to use instead of building one. The
	// caller keeps owning it: [Backend.Close] does not touch it. When it is
	// set, Address, Scheme, TokenFile and TLS must be empty (they belong to
	// the client) and the environment is not read; Token, Datacenter,
	// Namespace and Partition, if set, are sent with every request and
	// override the client's own. Its transport's connection limits are the
	// caller's too: watches hold one connection per bucket in use (at most
	// 32) in blocking queries.
	Client *api.Client

	// Prefix is the KV folder under which election keys live: one key
	// Prefix + "/" + escaped name per election. Default [DefaultPrefix].
	// It is one or more '/'-separated segments of ASCII letters, digits and
	// "-_.,", without "..", and without a leading or trailing '/'. Two
	// backends with different prefixes never share a key. Grant the token
	// key_prefix "<Prefix>/" write and session write on the agent's node.
	Prefix string

	// MinTTL is the smallest session TTL the servers accept: their
	// session_ttl_min. Default [DefaultMinTTL] (10s, Consul's default).
	// Set it only if every server runs with a lower session_ttl_min;
	// Limits reports it so that the core rejects shorter TTLs up front.
	MinTTL time.Duration

	// LockDelay is the Consul lock-delay of every session: after a session
	// is invalidated, the keys it held cannot be acquired for this long.
	//
	// Default 0 means the session's TTL, capped at [MaxLockDelay]: then no
	// candidate can be elected within one TTL of an invalidation, and the
	// old leader, whose deadline is at most its last successful renewal +
	// TTL, has stepped down by then, whenever and however Consul ended its
	// session. Consul 1.22 can end a session that was renewed a moment
	// before: a server whose session timers fired while it was being
	// deposed retries the failed invalidation 10s (then 20s, 40s, ...) later
	// without checking for renewals, and succeeds if it leads again by then
	// (README, "A stale invalidation"; TestStaleInvalidation). An operator
	// destroying a session is covered the same way. With the default, the
	// Consul session's TTL is TTL/2 (at least MinTTL), so that a crashed
	// leader's candidates are elected about 2×TTL after its last renewal,
	// as without a lock-delay: Consul invalidates a session about 2× its
	// TTL after the last renewal, then the lock-delay runs.
	//
	// [NoLockDelay] disables it: takeover after a crash or an operator's
	// destroy is one TTL sooner, but the stale invalidation above, or an
	// operator, can end a session early and elect another candidate while
	// the old leader still acts until its deadline (the fence still
	// refuses its writes). A positive value is used as is (at least 1ms);
	// below the TTL it leaves that window open for TTL − LockDelay.
	LockDelay time.Duration

	// SessionName is the name of the Consul sessions, for operators.
	// Default [DefaultSessionName].
	SessionName string

	// WatchWait is how long one blocking query of [Backend.Watch] waits for
	// a change before it is re-issued. Default [DefaultWatchWait]; range
	// (0, MaxWatchWait]. A watch whose link silently stops answering fails
	// after about WatchWait × 1.3 + 1s, so shorter values detect a dead
	// link sooner at the price of more idle queries.
	WatchWait time.Duration
}

// TLSConfig locates the files for HTTPS. Each zero field falls back to its
// CONSUL_* environment variable. [New] reads the files and fails with
// [election.ErrInvalidArgument] if one is missing or holds no usable PEM;
// a mismatch with the agent shows up on the first operation:
//   - an agent certificate that fails verification (unknown CA, name not
//     matching ServerName or the host), plain HTTP sent to an HTTPS-only
//     port, or HTTPS sent to a plain HTTP port, fails every operation with an error wrapping
//     [election.ErrInvalidArgument] that names the fields to check;
//   - a client certificate the agent refuses (verify_incoming), or its
//     absence, fails every operation with an error wrapping
//     [election.ErrUnavailable] that names the client certificate: the
//     agent's refusal can reach the client as a bare hang-up, which an
//     agent going down causes too.
type TLSConfig struct {
	// CAFile is a PEM bundle of the CAs that sign the agent's certificate
	// (CONSUL_CACERT). Empty means the system roots.
	CAFile string
	// CAPath is a directory of PEM CA certificates (CONSUL_CAPATH).
	CAPath string
	// CertFile and KeyFile are the client certificate and key, PEM, for
	// agents with verify_incoming (CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY).
	// Both or neither.
	CertFile string
	KeyFile  string
	// ServerName is the name to verify the agent's certificate against
	// (CONSUL_TLS_SERVER_NAME). Default: the host of Address.
	ServerName string
	// InsecureSkipVerify disables verification of the agent's certificate
	// (also enabled by CONSUL_HTTP_SSL_VERIFY=false). For tests only.
	InsecureSkipVerify bool
}

func (t TLSConfig) isZero() bool { return t == TLSConfig{} }

// settings is a validated Config with defaults and environment applied.
type settings struct {
	api         *api.Config // nil when the caller supplied Client
	client      *api.Client
	token       string
	datacenter  string
	namespace   string
	partition   string
	prefix      string
	minTTL      time.Duration
	lockDelay   time.Duration
	sessionName string
	watchWait   time.Duration
}

// invalid returns an error wrapping election.ErrInvalidArgument that names
// the field.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("consul: %w: %s: %s", election.ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}

// validate applies defaults and the environment to cfg and checks the
// result. It reports every problem at once.
func (cfg Config) validate() (settings, error) {
	s := settings{
		client:      cfg.Client,
		token:       cfg.Token,
		datacenter:  cfg.Datacenter,
		namespace:   cfg.Namespace,
		partition:   cfg.Partition,
		prefix:      cfg.Prefix,
		minTTL:      cfg.MinTTL,
		lockDelay:   cfg.LockDelay,
		sessionName: cfg.SessionName,
		watchWait:   cfg.WatchWait,
	}
	var errs []error
	errs = append(errs, s.applyDefaults()...)
	if cfg.Client != nil {
		for _, f := range []struct {
			field string
			set   bool
		}{
			{"Address", cfg.Address != ""},
			{"Scheme", cfg.Scheme != ""},
			{"TokenFile", cfg.TokenFile != ""},
			{"TLS", !cfg.TLS.isZero()},
		} {
			if f.set {
				errs = append(errs, invalid(f.field, "must be empty when Client is set (the client has its own)"))
			}
		}
		return s, errors.Join(errs...)
	}
	ac, envErrs := cfg.apiConfig(&s)
	s.api = ac
	errs = append(errs, envErrs...)
	return s, errors.Join(errs...)
}

// applyDefaults fills and checks the fields that do not depend on the
// connection.
func (s *settings) applyDefaults() []error {
	var errs []error
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if err := checkPrefix(s.prefix); err != nil {
		errs = append(errs, err)
	}
	switch {
	case s.minTTL < 0:
		errs = append(errs, invalid("MinTTL", "%v is negative", s.minTTL))
	case s.minTTL == 0:
		s.minTTL = DefaultMinTTL
	case s.minTTL > MaxTTL:
		errs = append(errs, invalid("MinTTL", "%v is above Consul's maximum session TTL %v", s.minTTL, MaxTTL))
	}
	switch {
	case s.lockDelay == NoLockDelay:
	case s.lockDelay < 0 || s.lockDelay > MaxLockDelay:
		errs = append(errs, invalid("LockDelay", "%v is outside [0, %v] and is not NoLockDelay", s.lockDelay, MaxLockDelay))
	case s.lockDelay > 0 && s.lockDelay < time.Millisecond:
		// Consul reads a lock-delay under 1000 as seconds.
		errs = append(errs, invalid("LockDelay", "%v is below 1ms, which Consul would read as seconds", s.lockDelay))
	}
	if s.sessionName == "" {
		s.sessionName = DefaultSessionName
	}
	switch {
	case s.watchWait < 0 || s.watchWait > MaxWatchWait:
		errs = append(errs, invalid("WatchWait", "%v is outside (0, %v]", s.watchWait, MaxWatchWait))
	case s.watchWait == 0:
		s.watchWait = DefaultWatchWait
	}
	return errs
}

// apiConfig builds the client configuration: api.DefaultConfig (which reads
// the CONSUL_HTTP_* variables) overridden by every field cfg sets. It also
// resolves the token, namespace and partition into s.
func (cfg Config) apiConfig(s *settings) (*api.Config, []error) {
	var errs []error
	for _, name := range []string{api.HTTPSSLEnvName, api.HTTPSSLVerifyEnvName} {
		if v := os.Getenv(name); v != "" {
			if _, err := strconv.ParseBool(v); err != nil {
				errs = append(errs, invalid(name, "environment variable %q is not a boolean", v))
			}
		}
	}
	if len(errs) > 0 {
		// api.DefaultConfig would log and ignore them.
		return nil, errs
	}
	ac := api.DefaultConfig()
	if ac.Transport != nil {
		// Each bucket's blocking query holds a connection: keep them all
		// idle between queries instead of dialling again, and queue
		// bursts of requests here rather than meet the agent's HTTP 429.
		ac.Transport.MaxIdleConnsPerHost = maxAgentConns
		ac.Transport.MaxConnsPerHost = maxAgentConns
	}
	addrField := api.HTTPAddrEnvName
	if cfg.Address != "" {
		ac.Address, addrField = cfg.Address, "Address"
	}
	switch cfg.Scheme {
	case "":
	case "http", "https":
		ac.Scheme = cfg.Scheme
	default:
		errs = append(errs, invalid("Scheme", "%q is not http or https", cfg.Scheme))
	}
	errs = append(errs, checkAddress(addrField, ac.Address, cfg.Scheme)...)

	t := cfg.TLS
	setIf(&ac.TLSConfig.CAFile, t.CAFile)
	setIf(&ac.TLSConfig.CAPath, t.CAPath)
	setIf(&ac.TLSConfig.CertFile, t.CertFile)
	setIf(&ac.TLSConfig.KeyFile, t.KeyFile)
	setIf(&ac.TLSConfig.Address, t.ServerName)
	if t.InsecureSkipVerify {
		ac.TLSConfig.InsecureSkipVerify = true
	}
	errs = append(errs, checkTLSFiles(ac.TLSConfig)...)

	// The token is sent per request so that its precedence is ours, not
	// the client's: explicit field, then CONSUL_HTTP_TOKEN_FILE, then
	// CONSUL_HTTP_TOKEN (the consul CLI's order).
	switch {
	case cfg.Token != "" && cfg.TokenFile != "":
		errs = append(errs, invalid("Token", "set Token or TokenFile, not both"))
	case cfg.Token != "":
	case cfg.TokenFile != "":
		s.token, errs = readToken("TokenFile", cfg.TokenFile, errs)
	case ac.TokenFile != "":
		s.token, errs = readToken(api.HTTPTokenFileEnvName, ac.TokenFile, errs)
	default:
		s.token = ac.Token
	}
	ac.Token, ac.TokenFile = "", ""
	if s.namespace == "" {
		s.namespace = ac.Namespace
	}
	if s.partition == "" {
		s.partition = ac.Partition
	}
	return ac, errs
}

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// checkAddress accepts host:port, http(s)://host:port[/path] and
// unix:///path; field names where the value came from.
func checkAddress(field, addr, scheme string) []error {
	rest, ok := "", false
	for _, p := range []string{"http://", "https://", "unix://"} {
		if r, found := strings.CutPrefix(addr, p); found {
			rest, ok = r, true
			if p == "https://" && scheme == "http" {
				return []error{invalid("Scheme", "http contradicts %s %q", field, addr)}
			}
			if p == "unix://" {
				if r == "" {
					return []error{invalid(field, "%q has no socket path", addr)}
				}
				return nil
			}
		}
	}
	if !ok {
		if strings.Contains(addr, "://") {
			return []error{invalid(field, "%q: scheme is not http, https or unix", addr)}
		}
		rest = addr
	}
	host, _, _ := strings.Cut(rest, "/")
	if _, port, err := net.SplitHostPort(host); err != nil || port == "" {
		return []error{invalid(field, "%q is not host:port", addr)}
	}
	return nil
}

// checkTLSFiles reports unreadable files and a certificate without its key;
// api.NewClient parses them afterwards.
func checkTLSFiles(t api.TLSConfig) []error {
	var errs []error
	for _, f := range []struct{ field, env, path string }{
		{"TLS.CAFile", api.HTTPCAFile, t.CAFile},
		{"TLS.CAPath", api.HTTPCAPath, t.CAPath},
		{"TLS.CertFile", api.HTTPClientCert, t.CertFile},
		{"TLS.KeyFile", api.HTTPClientKey, t.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, invalid(f.field+" (or "+f.env+")", "%v", err))
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, invalid("TLS.CertFile", "CertFile and KeyFile must be set together"))
	}
	return errs
}

func readToken(field, path string, errs []error) (string, []error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", append(errs, invalid(field, "%v", err))
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", append(errs, invalid(field, "%q is empty", path))
	}
	return tok, errs
}

// sessionTimes returns the Consul TTL and lock-delay of a session for an
// elector of TTL ttl (see Config.LockDelay). With a lock-delay of at least
// ttl, safety does not rest on Consul's timer, so the session's TTL is
// halved (not below minTTL) to keep crash takeover near 2×ttl; otherwise
// the session's TTL is ttl, and Consul's "no earlier than TTL" is what the
// leader's deadline relies on.
func (s *settings) sessionTimes(ttl time.Duration) (sessionTTL, lockDelay time.Duration) {
	switch s.lockDelay {
	case NoLockDelay:
		return ttl, 0
	case 0:
		lockDelay = min(ttl, MaxLockDelay)
	default:
		lockDelay = s.lockDelay
	}
	if lockDelay < ttl {
		return ttl, lockDelay
	}
	// Whole milliseconds: Consul's Go duration parser takes them as
	// written, and an operator reads them in session listings.
	return max((ttl / 2).Truncate(time.Millisecond), s.minTTL), lockDelay
}
