package etcd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Defaults applied by [New] to zero fields of [Config].
const (
	// DefaultPrefix is the key prefix used when Config.Prefix is empty.
	DefaultPrefix = "electionkit"
	// DefaultDialTimeout bounds [New] when Config.DialTimeout is zero.
	DefaultDialTimeout = 5 * time.Second
)

// Config configures a [Backend]. The zero value of each field means its
// documented default; [New] validates the whole struct at once and reports
// every problem, never replacing a value it finds wrong.
type Config struct {
	// Endpoints are the etcd client URLs: "host:port", "http://host:port"
	// or "https://host:port". Required unless Client is set. All endpoints
	// must use the same scheme; "http://" together with TLS is rejected
	// rather than silently sent in plain text.
	Endpoints []string

	// Prefix starts every key the backend writes: election name's keys are
	// Prefix + "/" + name + "%00" + an entry suffix, with '/' and '%' in the
	// name escaped, so two elections never share a key, whatever their
	// prefixes. Prefix must not contain '%'. Default [DefaultPrefix]. Grant
	// the etcd user (if any) read and write on the range Prefix + "/" with
	// --prefix.
	Prefix string

	// DialTimeout bounds how long [New] waits to connect, authenticate and
	// read once from the cluster before it fails with
	// election.ErrUnavailable. It does not bound later operations: their
	// contexts do. Default [DefaultDialTimeout]; must not be negative.
	DialTimeout time.Duration

	// Lazy makes [New] return without contacting the cluster: an
	// unreachable cluster, or a TLS setup it rejects, shows up in the
	// first operation's error instead (the elector's Start tolerates that
	// and campaigns until the cluster answers). Default false: New reads
	// once within DialTimeout. Lazy cannot be combined with Username and
	// Password: the etcd client authenticates when it is created, which
	// needs the cluster; use TLS client certificates for a lazy Backend
	// on a cluster with auth.
	Lazy bool

	// TLS, when not zero, makes every connection use TLS.
	TLS TLSConfig

	// Username and Password authenticate to an etcd cluster with auth
	// enabled. Both or neither. Wrong credentials fail [New] with
	// election.ErrInvalidArgument.
	Username string
	Password string

	// Client is an existing client to use instead of dialing. The caller
	// keeps owning it: [Backend.Close] does not close it. When Client is set,
	// Endpoints, TLS, Username and Password must be empty (they belong to
	// the client); DialTimeout still bounds the first read in [New].
	Client *clientv3.Client
}

// TLSConfig is either certificate files or a ready *tls.Config, not both.
type TLSConfig struct {
	// CAFile is a PEM bundle of the CAs that sign the servers'
	// certificates. Empty means the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and its key, PEM,
	// for clusters with --client-cert-auth. Both or neither.
	CertFile string
	KeyFile  string
	// Config is used as is (cloned) when set; the file fields must then be
	// empty.
	Config *tls.Config
}

func (t TLSConfig) isZero() bool {
	return t.CAFile == "" && t.CertFile == "" && t.KeyFile == "" && t.Config == nil
}

// settings is a validated Config with defaults applied.
type settings struct {
	endpoints   []string
	prefix      string
	dialTimeout time.Duration
	tls         *tls.Config
	username    string
	password    string
	client      *clientv3.Client
	lazy        bool
}

// validate checks cfg, applies defaults and loads TLS files. It reports every
// problem at once, each wrapping election.ErrInvalidArgument and naming its
// field.
func (cfg Config) validate() (settings, error) {
	s := settings{
		endpoints:   append([]string(nil), cfg.Endpoints...),
		prefix:      cfg.Prefix,
		dialTimeout: cfg.DialTimeout,
		username:    cfg.Username,
		password:    cfg.Password,
		client:      cfg.Client,
		lazy:        cfg.Lazy,
	}
	var errs []error
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if strings.Contains(s.prefix, "%") {
		errs = append(errs, invalid("Prefix", "%q contains '%%', which marks the entries of an election in its keys", s.prefix))
	}
	switch {
	case s.dialTimeout < 0:
		errs = append(errs, invalid("DialTimeout", "%v is negative", s.dialTimeout))
	case s.dialTimeout == 0:
		s.dialTimeout = DefaultDialTimeout
	}
	if cfg.Client != nil {
		if len(cfg.Endpoints) > 0 {
			errs = append(errs, invalid("Endpoints", "must be empty when Client is set (the client has its own)"))
		}
		if !cfg.TLS.isZero() {
			errs = append(errs, invalid("TLS", "must be empty when Client is set (the client has its own)"))
		}
		if cfg.Username != "" || cfg.Password != "" {
			errs = append(errs, invalid("Username", "must be empty when Client is set (the client has its own)"))
		}
		return s, errors.Join(errs...)
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		errs = append(errs, invalid("Username", "Username and Password must be set together"))
	}
	if cfg.Lazy && (cfg.Username != "" || cfg.Password != "") {
		errs = append(errs, invalid("Lazy", "cannot be combined with Username and Password: the etcd client authenticates when it is created (use TLS client certificates)"))
	}
	tlsConfig, tlsErrs := cfg.TLS.load()
	errs = append(errs, tlsErrs...)
	s.tls = tlsConfig
	errs = append(errs, checkEndpoints(cfg.Endpoints, !cfg.TLS.isZero())...)
	return s, errors.Join(errs...)
}

// checkEndpoints requires at least one endpoint, each a host:port or an
// http(s) URL, all with one scheme that agrees with withTLS.
func checkEndpoints(endpoints []string, withTLS bool) []error {
	if len(endpoints) == 0 {
		return []error{invalid("Endpoints", "at least one endpoint is required")}
	}
	var errs []error
	schemes := map[string]bool{}
	for i, ep := range endpoints {
		field := fmt.Sprintf("Endpoints[%d]", i)
		hostport, scheme := ep, ""
		if strings.Contains(ep, "://") {
			u, err := url.Parse(ep)
			if err != nil {
				errs = append(errs, invalid(field, "%q: %v", ep, err))
				continue
			}
			if u.Scheme != "http" && u.Scheme != "https" {
				errs = append(errs, invalid(field, "%q: scheme %q is not http or https", ep, u.Scheme))
				continue
			}
			if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
				errs = append(errs, invalid(field, "%q: want scheme://host:port only", ep))
				continue
			}
			hostport, scheme = u.Host, u.Scheme
		}
		if _, port, err := net.SplitHostPort(hostport); err != nil || port == "" {
			errs = append(errs, invalid(field, "%q is not host:port", ep))
			continue
		}
		schemes[scheme] = true
		if scheme == "http" && withTLS {
			errs = append(errs, invalid(field, "%q is plain http but TLS is configured", ep))
		}
	}
	if len(schemes) > 1 {
		errs = append(errs, invalid("Endpoints", "mixed schemes (http, https, none): the client would use the first one's for all"))
	}
	return errs
}

// load builds the client *tls.Config, nil when t is zero.
func (t TLSConfig) load() (*tls.Config, []error) {
	if t.isZero() {
		return nil, nil
	}
	if t.Config != nil {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" {
			return nil, []error{invalid("TLS.Config", "set either Config or the file fields, not both")}
		}
		return t.Config.Clone(), nil
	}
	var errs []error
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pool, err := loadCAs(t.CAFile)
		if err != nil {
			errs = append(errs, invalid("TLS.CAFile", "%v", err))
		}
		cfg.RootCAs = pool
	}
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		errs = append(errs, invalid("TLS.CertFile", "CertFile and KeyFile must be set together"))
	case t.CertFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			errs = append(errs, invalid("TLS.CertFile", "loading %s and %s: %v", t.CertFile, t.KeyFile, err))
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, errs
}

func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
