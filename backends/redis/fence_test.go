package redis

import (
	"strconv"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// TestFenceAfterLossAndClockBehind: the store hands out a fence from a
// clock that ran ahead (here: a fences hash written as a clock one hour
// ahead would have left it), then loses its data (FLUSHALL, as a restart
// without persistence or a failover to a replica that lacked the writes)
// while its clock is back to the true time. TIME alone would issue a
// fence an hour below the last one; a Backend that saw the last fence
// issues one above it. A Backend that saw nothing cannot (README: "Fences
// after a data loss"), which the second half shows, so that the test
// fails if the floor stops mattering.
func TestFenceAfterLossAndClockBehind(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	admin := srv.client(t)
	k := keysFor(DefaultPrefix)
	ahead := uint64(time.Now().Add(time.Hour).UnixMicro())
	if err := admin.HSet(ctx, k.fences, "ahead", versionPrefix+strconv.FormatUint(ahead, 10)+"}").Err(); err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, srv.client(t), Config{NoQuarantine: true})
	s := openSession(t, ctx, b, 10*time.Second)
	before := claim(t, ctx, s, request("ahead", "a"))
	if before.Fence <= ahead {
		t.Fatalf("fence %d, want above the stored %d", before.Fence, ahead)
	}
	if err := s.Release(ctx, before); err != nil {
		t.Fatal(err)
	}

	if err := admin.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	s = openSession(t, ctx, b, 10*time.Second)
	after := claim(t, ctx, s, request("ahead", "a"))
	if after.Fence <= before.Fence {
		t.Fatalf("fence after the data loss %d, not above %d from before it", after.Fence, before.Fence)
	}
	// Another election of the prefix, never seen by this Backend: the
	// floor is the prefix's, so its fence is above too.
	other := claim(t, ctx, s, request("other", "a"))
	if other.Fence <= before.Fence {
		t.Fatalf("fence of another election %d, not above %d", other.Fence, before.Fence)
	}

	// A Backend that saw none of it falls back to TIME: an hour below.
	if err := admin.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	fresh := newBackend(t, srv.client(t), Config{NoQuarantine: true})
	fs := openSession(t, ctx, fresh, 10*time.Second)
	if c := claim(t, ctx, fs, request("ahead", "b")); c.Fence >= before.Fence {
		t.Fatalf("a Backend with no floor got fence %d, not below %d: the case no longer needs the floor", c.Fence, before.Fence)
	}
}

// TestPTTLZeroIsAlive: a holder session read with PTTL 0 (it expires
// within the millisecond) lives a millisecond for the hub, not 0, which
// means "unknown" and would read it again at once rather than wait for it.
func TestPTTLZeroIsAlive(t *testing.T) {
	b := &Backend{keys: keysFor(DefaultPrefix)}
	stored, _, err := encodeClaim(election.ClaimRequest{Name: "n", Token: "token", ID: "a"}, "sid", 1000)
	if err != nil {
		t.Fatal(err)
	}
	value := versionPrefix + "42," + stored[1:]
	for _, tc := range []struct {
		pttl int64
		want time.Duration
	}{{0, time.Millisecond}, {5, 6 * time.Millisecond}, {-1, -1}} {
		st, err := b.parseRead("n", []any{"held", value, tc.pttl})
		if err != nil {
			t.Fatal(err)
		}
		if st.leader == nil || st.holder != "sid" || st.holderTTL != tc.want {
			t.Errorf("PTTL %d: leader %v, holder %q, holderTTL %v; want held by sid for %v", tc.pttl, st.leader, st.holder, st.holderTTL, tc.want)
		}
	}
}

// TestFenceFloorIgnoresInexactFences: a fence no claim script can issue
// (above 2⁵³, where Lua doubles stop counting by one) does not become the
// floor, so a forged announcement cannot stop fences from increasing.
func TestFenceFloorIgnoresInexactFences(t *testing.T) {
	var b Backend
	b.noteFence(1_796_000_000_000_000)
	b.noteFence(1 << 60)
	b.noteFence(1_795_000_000_000_000)
	if got := b.fenceFloor.Load(); got != 1_796_000_000_000_000 {
		t.Fatalf("floor %d, want 1796000000000000", got)
	}
}
