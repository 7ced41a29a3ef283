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

// OpenURL opens a client of an in-process store: memory://NAME reaches the
// store called NAME (created on first use) and memory:// a new private one.
// The URL takes no parameters besides the elector's own (ttl,
// renew_interval, drift_margin, removed by election.ParseURL), and no path,
// user info or port; anything else is an error wrapping
// election.ErrInvalidArgument that names every problem.
func OpenURL(ctx context.Context, u *url.URL) (election.Backend, error) {
	err := urlopt.Parse(u.Query(), invalid)
	if u.Path != "" && u.Path != "/" || u.User != nil || u.Port() != "" {
		err = errors.Join(err, invalid("url", "%s: a path, user info or port is not supported (want memory://NAME)", u.Redacted()))
	}
	if err != nil {
		return nil, err
	}
	if u.Host == "" {
		return NewStore().NewClient(), nil
	}
	namedMu.Lock()
	defer namedMu.Unlock()
	s, ok := named[u.Host]
	if !ok {
		s = NewStore()
		named[u.Host] = s
	}
	return s.NewClient(), nil
}

// invalid reports a malformed URL, naming the field.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("memory: %w: %s: %s", election.ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}
