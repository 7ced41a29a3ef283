package election_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// Lease.ID is the holder ID readers see: the one given, or the default.
func TestLeaseID(t *testing.T) {
	ctx := context.Background()
	backend := memory.New()
	for _, tc := range []struct{ key, id string }{{"given", "cron-host-7"}, {"default", ""}} {
		lease, err := election.TryLeaseWith(ctx, backend, tc.key, time.Minute, election.LeaseOptions{ID: tc.id})
		if err != nil {
			t.Fatal(err)
		}
		if tc.id != "" && lease.ID() != tc.id {
			t.Errorf("ID() = %q, want the given %q", lease.ID(), tc.id)
		}
		if lease.ID() == "" {
			t.Errorf("%s: ID() is empty", tc.key)
		}
		if l, err := backend.Leader(ctx, tc.key); err != nil || l.ID != lease.ID() {
			t.Errorf("%s: Leader = %+v, %v; want ID %q", tc.key, l, err, lease.ID())
		}
		var taken *election.TakenError
		if _, err := election.TryLease(ctx, backend, tc.key, time.Minute); !errors.As(err, &taken) || taken.Holder.ID != lease.ID() {
			t.Errorf("%s: second TryLease = %v, want a TakenError naming %q", tc.key, err, lease.ID())
		}
		if err := lease.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
