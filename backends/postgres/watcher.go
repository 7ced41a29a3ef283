package postgres

import (
	"context"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/watchq"
)

// watcher is one Watch or Notify of the hub (see [watchq.Watcher]).
type watcher = watchq.Watcher

func newWatcher(name string) *watcher { return watchq.New("postgres", name) }

func newNotifyWatcher(ctx context.Context, name string, fn func(election.WatchEvent)) *watcher {
	return watchq.NewNotify(ctx, "postgres", name, fn)
}
