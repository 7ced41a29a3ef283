package memory

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"slices"
	"sync"

	"github.com/electionkit/election"
)

func init() { election.Register("memory", OpenURL) }

// named holds the stores opened by name through memory:// URLs, so that
// every Open of memory://NAME in one process reaches the same store. This
// is the driver's own state, like a database/sql driver's connection cache.
var (
	namedMu sync.Mutex
	named   = map[string]*Store{}
)

// ParamExpiry is the memory:// URL parameter that chooses the store's
// [Expiry]: etcd (the default), redis or consul.
const ParamExpiry = "expiry"

// OpenURL opens a client of an in-process store: memory://NAME reaches the
// store called NAME (created on first use) and memory:// a new private one.
// The URL takes one parameter of its own, expiry=etcd|redis|consul
// ([ParamExpiry]), besides the elector's (ttl, renew_interval,
// drift_margin, removed by election.ParseURL). A named store keeps the
// expiry it was created with: opening it again with another (or none, which
// means etcd) is an error. Every problem is reported at once, in an error
// wrapping election.ErrInvalidArgument.
func OpenURL(ctx context.Context, u *url.URL) (election.Backend, error) {
	expiry, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	if u.Host == "" {
		return NewStore(WithExpiry(expiry)).NewClient(), nil
	}
	namedMu.Lock()
	defer namedMu.Unlock()
	s, ok := named[u.Host]
	switch {
	case !ok:
		s = NewStore(WithExpiry(expiry))
		named[u.Host] = s
	case s.expiry != expiry:
		return nil, &urlError{problem: "store " + u.Host + " exists with expiry=" + s.expiry.String() + ", not " + expiry.String()}
	}
	return s.NewClient(), nil
}

// parseURL validates a memory:// URL and returns the expiry it asks for.
func parseURL(u *url.URL) (Expiry, error) {
	var errs []error
	if u.Path != "" && u.Path != "/" || u.User != nil || u.Port() != "" {
		errs = append(errs, &urlError{problem: "unsupported path, user or port in " + u.Redacted()})
	}
	q := u.Query()
	expiry := EtcdExpiry
	for _, p := range slices.Sorted(maps.Keys(q)) {
		v := q[p]
		switch {
		case p != ParamExpiry:
			errs = append(errs, &urlError{problem: "unsupported parameter " + p + " (memory://NAME takes only expiry=etcd|redis|consul)"})
		case len(v) != 1:
			errs = append(errs, &urlError{problem: "expiry given more than once"})
		default:
			e, ok := parseExpiry(v[0])
			if !ok {
				errs = append(errs, &urlError{problem: "expiry " + v[0] + " is not etcd, redis or consul"})
			}
			expiry = e
		}
	}
	return expiry, errors.Join(errs...)
}

// urlError is one problem with a memory:// URL; it wraps
// election.ErrInvalidArgument.
type urlError struct{ problem string }

func (e *urlError) Error() string {
	return "election: invalid argument: memory url: " + e.problem
}

func (e *urlError) Unwrap() error { return election.ErrInvalidArgument }
