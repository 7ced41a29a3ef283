package consul

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

// TestRestartWithoutData shows what README "Restarts and data loss" warns
// of, the row of "What can go wrong" that has no remedy in this backend: a
// server that comes back without its data (a -dev agent restarted, a
// cluster rebuilt from scratch) has lost every session, key and its Raft
// index, and the backend does not detect it.
//   - Backend: the holder's next renewal reports its session gone, so a
//     holder that reaches the server steps down then (one that cannot
//     runs to its deadline, up to a TTL); and the election's next fence
//     comes from the new Raft index, at or below the last one handed out
//     before, even from the Backend that saw that one. If this fails
//     because the fence is above, the backend detects the loss now or the
//     index no longer restarts: update the README row.
//   - Candidate: the core refuses a fence at or below one its candidate
//     saw (ErrFenceWentBack) and releases that claim: the candidate that
//     led before the loss is elected again only once the new index has
//     passed its old fence.
func TestRestartWithoutData(t *testing.T) {
	t.Run("Backend", func(t *testing.T) {
		a := startAgent(t, agentOptions{})
		b := a.backend(t, nil)
		ttl := 5 * time.Second
		raiseIndex(t, a.client(t), 100)
		s := openSession(t, b, ttl)
		before := claim(t, s, "data-loss", "t1", "one")

		loseData(t, a)
		ctx := t.Context()
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
	})
	t.Run("Candidate", func(t *testing.T) {
		a := startAgent(t, agentOptions{})
		raiseIndex(t, a.client(t), 60)
		var mu sync.Mutex
		var wentBack int
		el, err := election.New(a.backend(t, nil), election.Config{
			TTL: 5 * time.Second, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
			OnEvent: func(ev election.Event) {
				if ev.Kind == election.EventClaimFailed && errors.Is(ev.Err, election.ErrFenceWentBack) {
					mu.Lock()
					wentBack++
					mu.Unlock()
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = el.Close(ctx)
		})
		c, err := el.NewCandidate(election.CandidateConfig{Name: "data-loss", ID: "one"})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "the candidate to lead", c.IsLeader)
		held, _ := c.Term()

		loseData(t, a)
		lost := time.Now()
		var next election.Term
		waitFor(t, time.Minute, "a term after the data loss", func() bool {
			term, ok := c.Term()
			if ok && term.Fence != held.Fence {
				next = term
				return true
			}
			return false
		})
		mu.Lock()
		refused := wentBack
		mu.Unlock()
		t.Logf("fence before the server lost its data %d; %d claims refused with ErrFenceWentBack, then elected %v after the restart with fence %d",
			held.Fence, refused, time.Since(lost).Round(time.Millisecond), next.Fence)
		if next.Fence <= held.Fence {
			t.Fatalf("the candidate that led at fence %d leads again at fence %d", held.Fence, next.Fence)
		}
		if refused == 0 {
			t.Fatal("no claim was refused with ErrFenceWentBack: the new index did not start below the old fence, so the test shows nothing")
		}
	})
}

// raiseIndex writes n keys outside any prefix, so that the Raft index is
// well above what a new server starts with, as on a server in service.
func raiseIndex(t *testing.T, raw *api.Client, n int) {
	t.Helper()
	for i := range n {
		if _, err := raw.KV().Put(&api.KVPair{Key: "filler/" + strconv.Itoa(i), Value: []byte("x")}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// loseData stops the agent, removes its data directory (the working
// directory's "data", teststore.StartConsul) and starts it again: a server
// rebuilt without its data.
func loseData(t *testing.T, a *testAgent) {
	t.Helper()
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
}
