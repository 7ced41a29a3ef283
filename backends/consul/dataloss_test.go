package consul

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

// TestRestartWithoutData shows what README "Restarts and data loss" warns
// of, the row of "What can go wrong" that has no remedy: a server that
// comes back without its data (a -dev agent restarted, a cluster rebuilt
// from scratch) has lost every session, key and its Raft index, and
// nothing detects it. The holder's next renewal reports its session gone,
// so a holder that reaches the server steps down then (one that cannot
// runs to its deadline, up to a TTL); and the election's next fence comes
// from the new Raft index, at or below the last one handed out before.
// If this test fails because the fence is above, the backend detects the
// loss now or the index no longer restarts: update the README row.
func TestRestartWithoutData(t *testing.T) {
	a := startAgent(t, agentOptions{})
	raw := a.client(t)
	b := a.backend(t, nil)
	ttl := 5 * time.Second
	// A server in service has written much before the election's term:
	// raise the Raft index well above what a new server starts with.
	for i := range 100 {
		if _, err := raw.KV().Put(&api.KVPair{Key: "filler/" + strconv.Itoa(i), Value: []byte("x")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	s := openSession(t, b, ttl)
	before := claim(t, s, "data-loss", "t1", "one")

	// The server's data directory is its working directory's "data"
	// (teststore.StartConsul); removing it between a stop and a start is
	// a server rebuilt without its data.
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", a.PID()))
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(cwd, "data")
	if _, err := os.Stat(filepath.Join(data, "raft")); err != nil {
		t.Fatalf("no Raft data under %s: %v", data, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}

	if err := s.Renew(ctx, []election.Claim{before}); !errors.Is(err, election.ErrSessionExpired) {
		t.Fatalf("Renew after the server lost its data = %v, want ErrSessionExpired", err)
	}
	if _, err := b.Leader(ctx, "data-loss"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("Leader after the server lost its data = %v, want ErrNoLeader", err)
	}
	after := claim(t, openSession(t, b, ttl), "data-loss", "t2", "two")
	t.Logf("fence before the server lost its data %d, after %d", before.Fence, after.Fence)
	if after.Fence > before.Fence {
		t.Fatalf("fence %d after the data loss is above %d from before it: README's warning that fences repeat no longer holds", after.Fence, before.Fence)
	}
}
