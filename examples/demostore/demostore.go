// Package demostore gives the examples a store to run against: the URL the
// user passed, or an embedded etcd server on a free loopback port when none
// was given, so every example runs with nothing installed. It is public so
// that an example copied into another module still builds; a real program
// opens its store with election.Open and a URL instead.
package demostore

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/electionkit/election/backends/etcd/etcdtest"

	// Every backend, so that -url can name any of them.
	_ "github.com/electionkit/election/backends/consul"
	_ "github.com/electionkit/election/backends/etcd"
	_ "github.com/electionkit/election/backends/memory"
	_ "github.com/electionkit/election/backends/redis"
)

// URL returns url unchanged when it is set. Otherwise it starts an embedded
// etcd server and returns an etcd:// URL for it under prefix; close stops
// the server. close is never nil.
func URL(ctx context.Context, url, prefix string) (string, func(), error) {
	if url != "" {
		return url, func() {}, nil
	}
	srv, err := etcdtest.Start(ctx, etcdtest.Options{})
	if err != nil {
		return "", func() {}, fmt.Errorf("start embedded etcd: %w", err)
	}
	hostPort := strings.TrimPrefix(srv.Endpoints()[0], "http://")
	return "etcd://" + hostPort + "/" + prefix, func() { _ = srv.Close() }, nil
}

// Context returns the context an example runs under: cancelled on Ctrl-C
// (os.Interrupt) and, when runFor is positive, after runFor. Call cancel
// when done.
func Context(runFor time.Duration) (ctx context.Context, cancel context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	if runFor <= 0 {
		return ctx, stop
	}
	ctx, timeout := context.WithTimeout(ctx, runFor)
	return ctx, func() { timeout(); stop() }
}
