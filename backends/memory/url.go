package memory

import (
	"context"
	"net/url"
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

// OpenURL opens a client of an in-process store: memory://NAME reaches the
// store called NAME (created on first use) and memory:// a new private one.
// The URL takes no parameters besides the elector's own (ttl,
// renew_interval, drift_margin, removed by election.ParseURL); any other is
// an error wrapping election.ErrInvalidArgument.
func OpenURL(ctx context.Context, u *url.URL) (election.Backend, error) {
	for p := range u.Query() {
		return nil, &paramError{param: p}
	}
	if u.Path != "" && u.Path != "/" || u.User != nil || u.Port() != "" {
		return nil, &paramError{param: "path, user or port in " + u.Redacted()}
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

type paramError struct{ param string }

func (e *paramError) Error() string {
	return "election: invalid argument: memory url: unsupported " + e.param + " (memory://NAME takes no options)"
}

func (e *paramError) Unwrap() error { return election.ErrInvalidArgument }
