package conformance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/electionkit/election"
)

// testQueuedHandoff: for a backend whose harness declares
// Capabilities.Queue, claims wait in line in the order they were made, the
// release of the holder makes the first claim in line the holder at once
// (the watch shows it next, with no vacancy in between, and Leader reads
// it), the claim so elected renews and releases like any claim, a claim
// taken out of line never holds, and fences increase along the line.
// Checked on the raw Backend, each claim from its own node. Without the
// capability it checks what the harness declares: that the backend's
// sessions do not queue (the core then waits for the watch's vacancy, which
// GracefulHandoff times).
func testQueuedHandoff(e *env) {
	const name = "queue"
	if !e.caps.Queue {
		e.openSession(e.newNode("a"), e.timing.TTL) // fails if the session queues after all
		e.t.Log("the harness does not declare Capabilities.Queue, and the backend's sessions indeed keep no line")
		return
	}
	nodes := []*node{e.newNode("a"), e.newNode("b"), e.newNode("c")}
	sessions := make([]election.Queuer, len(nodes))
	for i, n := range nodes {
		sessions[i] = e.openSession(n, e.timing.TTL).(election.Queuer)
	}
	session := func(i int) election.Session { return sessions[i].(election.Session) }

	claims := make([]election.Claim, len(nodes))
	for i, q := range sessions {
		id := nodes[i].id
		c, holder, err := q.Enqueue(e.ctx, election.ClaimRequest{Name: name, Token: fmt.Sprintf("token-%s-0123456789", id), ID: id})
		if err != nil {
			e.t.Fatalf("Enqueue(%s): %v", id, err)
		}
		switch {
		case i == 0 && holder != nil:
			e.t.Fatalf("Enqueue(a) on a vacant election: holder %+v, want none (a holds)", *holder)
		case i > 0 && (holder == nil || holder.ID != "a" || holder.Fence != claims[0].Fence):
			e.t.Fatalf("Enqueue(%s) behind a: holder %+v, want a with fence %d", id, holder, claims[0].Fence)
		case i > 0 && c.Fence <= claims[i-1].Fence:
			e.t.Fatalf("Enqueue(%s) fence %d, not greater than the claim before it (%d)", id, c.Fence, claims[i-1].Fence)
		}
		claims[i] = c
	}

	observer := e.newNode("observer")
	wctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	events, err := observer.b.Watch(wctx, name)
	if err != nil {
		e.t.Fatalf("Watch: %v", err)
	}
	// next returns the next event that shows a change from last.
	next := func(last *election.Leader) *election.Leader {
		e.t.Helper()
		timeout := time.NewTimer(e.timing.TTL)
		defer timeout.Stop()
		for {
			select {
			case ev, ok := <-events:
				if !ok || ev.Err != nil {
					e.t.Fatalf("watch ended: %v", ev.Err)
				}
				if last != nil && ev.Leader != nil && ev.Leader.Fence == last.Fence {
					continue
				}
				return ev.Leader
			case <-timeout.C:
				e.t.Fatalf("no watch event within one TTL (%v) of a change", e.timing.TTL)
			}
		}
	}
	first := next(nil)
	if first == nil || first.ID != "a" || first.Fence != claims[0].Fence {
		e.t.Fatalf("watch starts with %+v, want a with fence %d", first, claims[0].Fence)
	}

	// Taking c out of line changes nothing now, and later leaves the
	// election vacant instead of held by c.
	if err := session(2).Release(e.ctx, claims[2]); err != nil {
		e.t.Fatalf("Release of c's claim in line: %v", err)
	}
	if err := session(2).Release(e.ctx, claims[2]); !errors.Is(err, election.ErrNotOwner) {
		e.t.Fatalf("second Release of c's claim = %v, want ErrNotOwner", err)
	}
	if l, err := observer.b.Leader(e.ctx, name); err != nil || l.ID != "a" || l.Fence != claims[0].Fence {
		e.t.Fatalf("after c left the line, Leader = %+v, %v; want a unchanged", l, err)
	}

	// b is next in line: a's release elects it with no write of its own.
	if err := session(0).Release(e.ctx, claims[0]); err != nil {
		e.t.Fatalf("Release(a): %v", err)
	}
	got := next(first)
	if got == nil {
		e.t.Fatalf("after a's release the watch showed a vacancy; b was in line")
	}
	if got.ID != "b" || got.Fence != claims[1].Fence {
		e.t.Fatalf("after a's release the watch shows %+v, want b with its queued fence %d", *got, claims[1].Fence)
	}
	if l, err := observer.b.Leader(e.ctx, name); err != nil || l.ID != "b" || l.Fence != claims[1].Fence {
		e.t.Fatalf("after a's release, Leader = %+v, %v; want b with fence %d", l, err, claims[1].Fence)
	}
	if err := session(1).Renew(e.ctx, []election.Claim{claims[1]}); err != nil {
		e.t.Fatalf("Renew of b's claim, now holding: %v", err)
	}
	if err := session(0).Renew(e.ctx, []election.Claim{claims[0]}); !errors.Is(err, election.ErrNotOwner) {
		e.t.Fatalf("Renew of a's released claim = %v, want ErrNotOwner", err)
	}

	// With c out of line, b's release leaves the election vacant.
	if err := session(1).Release(e.ctx, claims[1]); err != nil {
		e.t.Fatalf("Release(b): %v", err)
	}
	if got := next(got); got != nil {
		e.t.Fatalf("after b's release the watch shows %+v, want vacant (c left the line)", *got)
	}
	if _, err := observer.b.Leader(e.ctx, name); !errors.Is(err, election.ErrNoLeader) {
		e.t.Fatalf("after b's release, Leader err = %v, want ErrNoLeader", err)
	}
	again, err := session(2).Claim(e.ctx, election.ClaimRequest{Name: name, Token: "token-c2-0123456789", ID: "c"})
	if err != nil {
		e.t.Fatalf("Claim of the vacant election: %v", err)
	}
	if again.Fence <= claims[2].Fence {
		e.t.Fatalf("fence of a new claim %d is not greater than the line's last (%d)", again.Fence, claims[2].Fence)
	}
}
