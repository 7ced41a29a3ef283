package election_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// A candidate campaigns, runs leader-only work with a context that ends
// when leadership ends, and hands over on Stop.
func Example() {
	ctx := context.Background()
	backend := memory.New() // or election.Open(ctx, "etcd://127.0.0.1:2379/myapp")

	el, err := election.New(backend, election.Config{TTL: 5 * time.Second})
	if err != nil {
		panic(err)
	}
	defer el.Close(ctx)

	c, err := el.NewCandidate(election.CandidateConfig{
		Name:     "outbox-dispatcher",
		ID:       "node-a",
		Metadata: map[string]string{"addr": "10.0.0.7:8080"},
	})
	if err != nil {
		panic(err)
	}
	elected := make(chan election.Term, 1)
	c.AddHandlers(func(ctx context.Context, t election.Term) {
		elected <- t
		<-ctx.Done() // do leader-only work until leadership ends
	})
	if err := c.Start(ctx); err != nil {
		panic(err)
	}
	t := <-elected
	fmt.Println("leader:", c.IsLeader(), "fence:", t.Fence)

	_ = c.Stop(ctx) // releases at once: the next candidate takes over
	fmt.Println("leader after stop:", c.IsLeader())
	// Output:
	// leader: true fence: 1
	// leader after stop: false
}

// TryLease guards a bulk job the way GitLab's ExclusiveLease does, with an
// owner token and a fencing token.
func ExampleTryLease() {
	ctx := context.Background()
	backend := memory.New()

	lease, err := election.TryLease(ctx, backend, "reindex-project-42", time.Minute)
	if err != nil {
		panic(err)
	}
	_, err = election.TryLease(ctx, backend, "reindex-project-42", time.Minute)
	var taken *election.TakenError
	fmt.Println("second attempt taken:", errors.As(err, &taken))

	fmt.Println("valid:", lease.Valid(), "fence:", lease.Fence())
	fmt.Println("release:", lease.Release(ctx))
	// Output:
	// second attempt taken: true
	// valid: true fence: 1
	// release: <nil>
}

// An observer follows who leads without campaigning.
func ExampleElector_Observe() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := memory.NewStore()

	watcher, _ := election.New(store.NewClient(), election.Config{})
	changes, _ := watcher.Observe(ctx, "scheduler")
	fmt.Println("vacant:", (<-changes).Leader == nil)

	el, _ := election.New(store.NewClient(), election.Config{})
	c, _ := el.NewCandidate(election.CandidateConfig{Name: "scheduler", ID: "node-b"})
	_ = c.Start(ctx)
	l := (<-changes).Leader
	fmt.Println("leader:", l.ID, "fence:", l.Fence)
	_ = el.Close(ctx)
	fmt.Println("vacant again:", (<-changes).Leader == nil)
	// Output:
	// vacant: true
	// leader: node-b fence: 1
	// vacant again: true
}
