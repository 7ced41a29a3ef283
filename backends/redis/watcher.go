package redis

import (
	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/watchq"
)

// watcher is one Watch or Notify of the hub (see [watchq.Watcher]).
type watcher = watchq.Watcher

func newWatcher(name string) *watcher { return watchq.New("redis", name) }

func newNotifyWatcher(name string, fn func(election.WatchEvent)) *watcher {
	return watchq.NewNotify("redis", name, fn)
}
