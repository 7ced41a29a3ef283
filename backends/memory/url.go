package memory

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/urlopt"
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
// drift_margin, removed by election.ParseURL) and lazy (a boolean that
// changes nothing: an in-process store is always reachable; it is accepted
// so that a URL's parameters carry over from the other backends), and no
// path, user info or port. A named store keeps the expiry it was created with: opening it
// again with another (or none, which means etcd) is an error. Every problem
// is reported at once, in an error wrapping election.ErrInvalidArgument.
func OpenURL(ctx context.Context, u *url.URL) (election.Backend, error) {
	expiry := EtcdExpiry
	var lazy bool
	err := urlopt.Parse(u.Query(), invalid, urlopt.Func(ParamExpiry, "etcd, redis or consul", func(v string) error {
		e, ok := parseExpiry(v)
		if !ok {
			return errors.New("unknown expiry")
		}
		expiry = e
		return nil
	}), urlopt.Bool("lazy", &lazy))
	if u.Path != "" && u.Path != "/" || u.User != nil || u.Port() != "" {
		err = errors.Join(err, invalid("url", "%s: a path, user info or port is not supported (want memory://NAME)", u.Redacted()))
	}
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
		return nil, invalid("url", "store %s exists with expiry=%v, not %v", u.Host, s.expiry, expiry)
	}
	return s.NewClient(), nil
}

// invalid reports a malformed URL, naming the field.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("memory: %w: %s: %s", election.ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}
