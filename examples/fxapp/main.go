// Command fxapp is a singleton outbox dispatcher as an fx application: every
// replica runs the app, and only the one that leads the "outbox-dispatcher"
// election publishes pending messages. A rolling deploy hands the work over
// in milliseconds, because the stopping replica releases the election.
//
//	go run ./examples/fxapp                          # embedded etcd, one replica
//	go run ./examples/fxapp -url etcd://127.0.0.1:2379/shop -id replica-a
//	go run ./examples/fxapp -url etcd://127.0.0.1:2379/shop -id replica-b
//
// Each published message carries the leader's fencing token, so a broker
// that remembers the newest token can reject a deposed replica's publish.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/electionkit/election"
	"github.com/electionkit/election/examples/demostore"
	"github.com/electionkit/election/fxmodule"
)

func main() {
	url := flag.String("url", "", "backend URL; empty: an embedded etcd")
	id := flag.String("id", "", "replica ID (default: host-pid-random)")
	runFor := flag.Duration("for", 0, "stop after this long (0: until Ctrl-C)")
	flag.Parse()
	ctx, cancel := demostore.Context(*runFor) // Ctrl-C or -for ends the run
	defer cancel()
	url2, closeStore, err := demostore.URL(ctx, *url, "fxapp")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fxapp:", err)
		os.Exit(1)
	}
	defer closeStore()
	outbox := NewOutbox(os.Stdout)
	go outbox.Produce(ctx, 300*time.Millisecond)
	app := NewApp(url2, *id, outbox)
	if err := app.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "fxapp:", err)
		os.Exit(1)
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.Stop(stopCtx); err != nil {
		fmt.Fprintln(os.Stderr, "fxapp:", err)
		os.Exit(1)
	}
}

// NewApp builds one replica: the election module, the dispatcher as a
// leader-only job, and a development logger.
func NewApp(url, id string, outbox *Outbox) *fx.App {
	return fx.New(
		fx.NopLogger,
		fx.Supply(election.Settings{URL: url, ID: id, TTL: election.Duration(2 * time.Second)}),
		fx.Supply(outbox),
		fx.Provide(func() (*zap.Logger, error) {
			cfg := zap.NewDevelopmentConfig()
			cfg.Level.SetLevel(zap.InfoLevel)
			cfg.OutputPaths = []string{"stderr"}
			return cfg.Build()
		}),
		fxmodule.Module,
		fx.Provide(func(o *Outbox) fxmodule.JobResult {
			return fxmodule.JobResult{Job: fxmodule.Job{Election: "outbox-dispatcher", Run: o.Dispatch}}
		}),
	)
}

// Outbox stands for an outbox table: the service appends messages in its
// transactions, and the leader publishes them in order.
type Outbox struct {
	mu        sync.Mutex
	w         io.Writer
	pending   []int
	next      int
	published []Publish
}

// Publish is one message sent to the broker with the publisher's fence.
type Publish struct {
	Message int
	By      string
	Fence   uint64
}

// NewOutbox returns an empty outbox that reports publishes to w.
func NewOutbox(w io.Writer) *Outbox { return &Outbox{w: w} }

// Add appends a message, as the service's own transactions would.
func (o *Outbox) Add() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.next++
	o.pending = append(o.pending, o.next)
}

// Produce adds a message every interval until ctx ends.
func (o *Outbox) Produce(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			o.Add()
		}
	}
}

// Dispatch is the leader-only job: it publishes pending messages until
// leadership ends.
func (o *Outbox) Dispatch(ctx context.Context, t election.Term) {
	fmt.Fprintf(o.w, "%s: leading outbox-dispatcher (fence %d)\n", t.ID, t.Fence)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(o.w, "%s: dispatcher stopped: %v\n", t.ID, context.Cause(ctx))
			return
		case <-tick.C:
			o.flush(t)
		}
	}
}

func (o *Outbox) flush(t election.Term) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range o.pending {
		o.published = append(o.published, Publish{Message: m, By: t.ID, Fence: t.Fence})
		fmt.Fprintf(o.w, "%s: published message %d (fence %d)\n", t.ID, m, t.Fence)
	}
	o.pending = nil
}

// Published returns what was published so far.
func (o *Outbox) Published() []Publish {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Publish(nil), o.published...)
}
