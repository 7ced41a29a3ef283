package fxmodule_test

import (
	"context"
	"fmt"

	"go.uber.org/fx"

	"github.com/electionkit/election"
	_ "github.com/electionkit/election/backends/memory" // registers memory://
	"github.com/electionkit/election/fxmodule"
)

// A service with one leader-only job. In production the URL names etcd,
// Redis or Consul, and ELECTION_URL can override it per environment.
func Example() {
	started := make(chan struct{})
	reap := func(ctx context.Context, t election.Term) {
		fmt.Printf("reaping as leader of %s\n", t.Election)
		close(started)
		<-ctx.Done() // leadership ended or the app is stopping
		fmt.Println("reaper stopped")
	}

	var leadership *fxmodule.Leadership
	app := fx.New(
		fx.NopLogger,
		fx.Supply(election.Settings{URL: "memory://example", ID: "pod-1"}),
		fxmodule.Module,
		fxmodule.AsJob("reaper", reap),
		fx.Populate(&leadership),
	)
	if err := app.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	<-started
	fmt.Println("leader:", leadership.IsLeader("reaper"))
	if err := app.Stop(context.Background()); err != nil {
		fmt.Println(err)
	}
	fmt.Println("leader after stop:", leadership.IsLeader("reaper"))
	// Output:
	// reaping as leader of reaper
	// leader: true
	// reaper stopped
	// leader after stop: false
}

// Work that is not a long-running job can still be leader-only:
// RunIfLeader runs it only while this instance leads, and a handover
// waits for it.
func ExampleLeadership_RunIfLeader() {
	var leadership *fxmodule.Leadership
	app := fx.New(
		fx.NopLogger,
		fx.Supply(election.Settings{URL: "memory://example-run-if-leader"}),
		fxmodule.Module,
		fxmodule.Campaign("billing"),
		fx.Populate(&leadership),
	)
	if err := app.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer app.Stop(context.Background())

	err := leadership.RunIfLeader(context.Background(), "billing", func(ctx context.Context, t election.Term) error {
		// Pass t.Fence to the systems written to, so that they reject a
		// deposed leader.
		fmt.Println("sending invoices; fenced:", t.Fence > 0)
		return nil
	})
	fmt.Println("err:", err)
	// Output:
	// sending invoices; fenced: true
	// err: <nil>
}
