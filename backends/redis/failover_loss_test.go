package redis

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/faultproxy"
)

// TestFailoverLosesUnreplicatedWrites reproduces the failover README.md
// warns about under "Replication is asynchronous": writes that reached the
// primary P but not its replica R are lost when R is promoted. R then holds
// an older term, a new leader is elected on R while the last leader of P
// still believes it holds, that leader learns at its next renewal, and the
// new term's fence is above the lost one only because fences are server
// TIME.
//
// A, B and C are three candidates of one election, all with the same TTL.
func TestFailoverLosesUnreplicatedWrites(t *testing.T) {
	const name = "failover-loss"
	// Long enough that the steps between A's claim and the read on R fit
	// in it on a loaded machine; A's term on R outlives the failover.
	ttl := 4 * time.Second
	ctx := testContext(t, 60*time.Second)

	// R replicates P through a proxy: cutting the proxy partitions the
	// replication link while both processes keep running.
	primary := startServer(t, "--repl-diskless-sync-delay", "0") // no 5s wait for more replicas
	link, err := faultproxy.New(primary.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = link.Close() })
	host, port, _ := net.SplitHostPort(link.Addr())
	replica := startServer(t, "--replicaof", host, port)
	waitReplicaOnline(t, ctx, primary, 1)
	onP, onR := primary.client(t), replica.client(t)

	// A claims on P, and the claim reaches R.
	cfg := Config{Quarantine: 50 * time.Millisecond}
	backendOnP := newBackend(t, onP, cfg)
	a := openSession(t, ctx, backendOnP, ttl)
	heldA := claim(t, ctx, a, request(name, "a"))
	waitStored(t, ctx, onR, name, "a", heldA.Fence)

	// Cut the link. A leads on for half a TTL and renews, then steps down,
	// and B claims: all of it reaches P only.
	if err := link.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	cut := time.Now() // A's session key on R expires at most one TTL after this
	time.Sleep(ttl / 2)
	if err := a.Renew(ctx, []election.Claim{heldA}); err != nil {
		t.Fatalf("A's Renew on P: %v", err)
	}
	if err := a.Release(ctx, heldA); err != nil {
		t.Fatalf("A's Release on P: %v", err)
	}
	b := openSession(t, ctx, backendOnP, ttl)
	sentB := time.Now()
	heldB, err := b.Claim(ctx, request(name, "b"))
	if err != nil {
		t.Fatalf("B's Claim on P: %v", err)
	}
	if id, fence := stored(t, ctx, onP, name); id != "b" || fence != heldB.Fence {
		t.Fatalf("P holds %q (fence %d), want B's term (fence %d)", id, fence, heldB.Fence)
	}
	if id, fence := stored(t, ctx, onR, name); id != "a" || fence != heldA.Fence {
		t.Fatalf("R holds %q (fence %d) with the link cut, want A's replicated term (fence %d)", id, fence, heldA.Fence)
	}

	// A caller that waits for one replica hears of the risk: the same kind
	// of claim over the cut link is applied on P but reported as unknown.
	waiting := newBackend(t, onP, Config{Quarantine: cfg.Quarantine, WaitReplicas: 1, WaitTimeout: 200 * time.Millisecond})
	_, err = openSession(t, ctx, waiting, ttl).Claim(ctx, request(name+"-waited", "b"))
	if !errors.Is(err, election.ErrUnavailable) || !errors.Is(err, errWaitShort) {
		t.Errorf("Claim with WaitReplicas 1 over the cut link = %v, want ErrUnavailable (too few replicas)", err)
	}

	// P dies; R is promoted, as Sentinel would do.
	if err := primary.proc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := onR.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatalf("REPLICAOF NO ONE: %v", err)
	}
	if role, err := onR.Do(ctx, "ROLE").Slice(); err != nil || len(role) == 0 || role[0] != "master" {
		t.Fatalf("ROLE of R after REPLICAOF NO ONE = %v, %v", role, err)
	}

	// R still shows A's term: A's release was lost with B's claim, and a
	// replica keeps a key until its own expiry, which R now runs.
	backendOnR := newBackend(t, onR, cfg)
	l, err := backendOnR.Leader(ctx, name)
	if err != nil || l.ID != "a" || l.Fence != heldA.Fence {
		if since := time.Since(cut); since >= ttl {
			t.Fatalf("the failover ended %v after the cut, past A's TTL %v: too slow to observe A's term on R (Leader = %+v, %v)", since, ttl, l, err)
		}
		t.Fatalf("Leader on R = %+v, %v; want A's replicated term (fence %d)", l, err, heldA.Fence)
	}

	// C's claim on R is refused by A's term, whose session key on R has
	// the expiry of A's last write before the cut: A's renewal after it,
	// which would have moved it ttl/2 later, was lost too. R has been up
	// for longer than the quarantine, so none applies. The expiry is at
	// most P's wall clock at the cut + TTL, and R's clock is the same (one
	// host); the slack covers millisecond rounding.
	ch, err := backendOnR.Watch(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch); ev.Leader == nil || ev.Leader.Fence != heldA.Fence {
		t.Fatalf("watch on R = %+v, want A's term (fence %d)", ev, heldA.Fence)
	}
	c := openSession(t, ctx, backendOnR, ttl)
	sentC := time.Now()
	_, err = c.Claim(ctx, request(name, "c"))
	var taken *election.TakenError
	if !errors.As(err, &taken) || taken.Holder.ID != "a" || taken.Holder.Fence != heldA.Fence {
		t.Fatalf("C's first Claim on R = %v, want TakenError held by A (fence %d)", err, heldA.Fence)
	}
	leftA, err := onR.PTTL(ctx, a.(*session).key).Result()
	if err != nil {
		t.Fatal(err)
	}
	const slack = 100 * time.Millisecond
	if latest := cut.Round(0).Add(ttl).Sub(sentC.Round(0)); leftA > latest+slack {
		t.Errorf("A's session on R expires in %v, later than the cut allows (%v): a write after the cut reached R", leftA, latest)
	}

	// Once A's session expires on R, the watch there reports the vacancy
	// (its timer per holding session) and C is elected, while B, by its
	// own clock, still holds: its deadline is the send time of its claim +
	// TTL − DriftMargin (the core's default TTL/10), and nothing has told
	// it otherwise.
	if ev := next(t, ch); ev.Leader != nil || ev.Err != nil {
		t.Fatalf("watch on R after A's session expired = %+v, want a vacancy", ev)
	}
	heldC, err := c.Claim(ctx, request(name, "c"))
	if err != nil {
		t.Fatalf("C's Claim on R after the vacancy: %v", err)
	}
	electedC := time.Now()
	deadlineB := sentB.Add(ttl - ttl/10)
	if !electedC.Before(deadlineB) {
		t.Fatalf("C was elected %v after B's local deadline: no overlap to observe", electedC.Sub(deadlineB))
	}

	// (a) B learns at its next renewal. B's session key exists on P
	// only, so B's renewal routed to the new primary, as a Sentinel client
	// would route it (this Renew of B's session through R), finds it gone.
	// The core renews every RenewInterval, so B acts beside C until its
	// first renewal that reaches R, and never past its local deadline;
	// renewals that fail as unavailable (B cannot reach R yet) leave it
	// acting until that deadline.
	hubOnR, err := backendOnR.currentHub()
	if err != nil {
		t.Fatal(err)
	}
	bs := b.(*session)
	bOnR := &session{backend: backendOnR, hub: hubOnR, id: bs.id, key: bs.key, ttl: ttl}
	if err := bOnR.Renew(ctx, []election.Claim{heldB}); !errors.Is(err, election.ErrSessionExpired) {
		t.Fatalf("B's Renew on R = %v, want ErrSessionExpired", err)
	}
	if l, err := backendOnR.Leader(ctx, name); err != nil || l.ID != "c" || l.Fence != heldC.Fence {
		t.Fatalf("Leader on R after B's failed renewal = %+v, %v; want C's term (fence %d)", l, err, heldC.Fence)
	}

	// (b) C's fence is above B's, though R never saw B's: R's last fence
	// is A's, so last + 1 would not do; R's TIME at C's claim is later
	// than P's TIME at B's claim. That holds because P and R read one
	// clock here; on two hosts it assumes R's clock is behind P's by less
	// than the time from B's claim to C's (here A's remaining term; after
	// a failover to a replica holding no key, only the failover's own
	// duration).
	if heldC.Fence <= heldB.Fence {
		t.Errorf("C's fence %d is not above B's %d: B's writes would not be fenced off", heldC.Fence, heldB.Fence)
	}
	t.Logf("fences: A %d (replicated), B %d (P only), C %d (on R, %v of server time after B's)",
		heldA.Fence, heldB.Fence, heldC.Fence, time.Duration(heldC.Fence-heldB.Fence)*time.Microsecond)
	t.Logf("on R after the failover, A's term had %v left; C elected %v after P was killed, %v before B's local deadline (claim + TTL − TTL/10, TTL %v)",
		leftA, electedC.Sub(killed), deadlineB.Sub(electedC), ttl)
}

// stored returns the candidate ID and fence of the term client's server
// holds for name, or "" and 0 when it holds none. It reads the key directly
// (a replica answers reads).
func stored(t *testing.T, ctx context.Context, client *goredis.Client, name string) (string, uint64) {
	t.Helper()
	value, err := client.Get(ctx, keysFor(DefaultPrefix).claim(name)).Result()
	if errors.Is(err, goredis.Nil) {
		return "", 0
	}
	if err != nil {
		t.Fatalf("GET claim key of %q: %v", name, err)
	}
	var rec claimRecord
	if err := json.Unmarshal([]byte(value), &rec); err != nil {
		t.Fatalf("claim key of %q: %v", name, err)
	}
	return rec.ID, rec.Fence
}

// waitStored waits until client's server holds id's term with fence, as a
// replica does once the write has been replicated (asynchronously).
func waitStored(t *testing.T, ctx context.Context, client *goredis.Client, name, id string, fence uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, gotFence := stored(t, ctx, client, name)
		if got == id && gotFence == fence {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica holds %q (fence %d) 10s after the claim, want %q (fence %d)", got, gotFence, id, fence)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
