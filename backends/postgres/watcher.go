package postgres

import (
	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/watchq"
)

// watcher is one Watch or Notify of the hub (see [watchq.Watcher]).
type watcher = watchq.Watcher

func newWatcher(name string) *watcher { return watchq.New("postgres", name) }

func newNotifyWatcher(name string, fn func(election.WatchEvent)) *watcher {
	return watchq.NewNotify("postgres", name, fn)
}
