package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/electionkit/election/internal/teststore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The program runs end to end on a real postgres: node-1's writes, then
// node-2's under a higher fence, node-1's late write refused, and the row
// left with node-2's work. Twice on one database, as a user re-running it
// would: the second run's fences are above the first's.
func TestPostgresFencing(t *testing.T) {
	srv := teststore.StartPostgres(t, teststore.PostgresOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var lastFence uint64
	for round := 1; round <= 2; round++ {
		var out bytes.Buffer
		rep, err := run(ctx, &out, srv.URL)
		if err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, out.String())
		}
		t.Logf("round %d:\n%s", round, out.String())
		var accepted, refused []Write
		for _, w := range rep.Writes {
			if w.Accepted {
				accepted = append(accepted, w)
			} else {
				refused = append(refused, w)
			}
		}
		if len(refused) != 1 || refused[0].Node != "node-1" {
			t.Fatalf("round %d: refused writes %+v, want exactly node-1's late one", round, refused)
		}
		var n1, n2 uint64
		for i, w := range accepted {
			if w.Fence < lastFence || i == 0 && round > 1 && w.Fence <= lastFence {
				t.Errorf("round %d: %s's write carries fence %d, after one with fence %d", round, w.Node, w.Fence, lastFence)
			}
			lastFence = w.Fence
			switch w.Node {
			case "node-1":
				n1 = w.Fence
			case "node-2":
				n2 = w.Fence
			}
		}
		if n1 == 0 || n2 == 0 || n2 <= n1 {
			t.Fatalf("round %d: node-1 wrote with fence %d, node-2 with %d; want both, node-2's higher", round, n1, n2)
		}
		if refused[0].Fence != n1 || refused[0].Fence >= rep.FinalFence {
			t.Errorf("round %d: the refused write carries fence %d; want node-1's %d, below the row's %d", round, refused[0].Fence, n1, rep.FinalFence)
		}
		if last := accepted[len(accepted)-1]; rep.FinalFence != n2 || rep.FinalValue != last.Value || last.Node != "node-2" {
			t.Errorf("round %d: the row holds %q at fence %d, want node-2's last write %q at %d", round, rep.FinalValue, rep.FinalFence, last.Value, n2)
		}
	}
}
