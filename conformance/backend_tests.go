package conformance

import (
	"errors"
	"strings"
	"time"

	"github.com/electionkit/election"
)

// testTryLease: a one-shot lease is exclusive, held by the store for at
// least its TTL (until then, every TryLease of another client gets
// ErrTaken naming the holder), gone within TTL + ExpiryLag + 2s when not
// renewed and free within ClaimDelay + 2s after that, and released only
// with its token. A failure of the lower bound
// means two holders could act at once; of the upper bound, that a crashed
// holder blocks the lease far longer than its TTL.
func testTryLease(e *env) {
	a, b := e.newNode("a"), e.newNode("b")
	ttl := e.timing.TTL
	take := func(n *node) (*election.Lease, error) {
		return election.TryLeaseWith(e.ctx, n.b, "lease", ttl, election.LeaseOptions{ID: n.id})
	}
	// wantTaken fails the test unless err is a *TakenError naming l,
	// taken by holder.
	wantTaken := func(err error, holder string, l *election.Lease, what string) {
		e.t.Helper()
		var taken *election.TakenError
		if !errors.As(err, &taken) {
			e.t.Fatalf("%s = %v, want a *TakenError", what, err)
		}
		if taken.Holder.ID != holder || taken.Holder.Fence != l.Fence() {
			e.t.Fatalf("%s: taken by %+v, want %s with fence %d", what, taken.Holder, holder, l.Fence())
		}
	}
	la, err := take(a)
	if err != nil {
		e.t.Fatalf("TryLease: %v", err)
	}
	if !la.Valid() {
		e.t.Fatalf("fresh lease not valid")
	}
	_, err = take(b)
	wantTaken(err, "a", la, "second TryLease")
	if err := la.Renew(e.ctx); err != nil {
		e.t.Fatalf("Renew: %v", err)
	}
	if err := la.Release(e.ctx); err != nil {
		e.t.Fatalf("Release: %v", err)
	}
	taken := time.Now()
	lb, err := take(b)
	if err != nil {
		e.t.Fatalf("TryLease after release: %v", err)
	}
	if lb.Fence() <= la.Fence() {
		e.t.Fatalf("fence %d after %d: not increasing", lb.Fence(), la.Fence())
	}
	// Let lb expire unrenewed: a's attempts fail naming b until the TTL
	// has passed, and one succeeds soon after (or, where the store delays
	// claims after an expiry, is refused naming no holder, and one
	// succeeds once the delay is over).
	var lc *election.Lease
	took := e.awaitExpiry("b's unrenewed lease", taken, ttl, lb.TTL(), func() bool {
		var err error
		lc, err = take(a)
		switch {
		case err == nil, e.refusedInDelay(err, "TryLease after b's lease expired"):
			return true
		}
		wantTaken(err, "b", lb, "TryLease while b's lease runs out")
		return false
	})
	if lc == nil {
		e.awaitClaimable("TryLease after b's lease expired", taken.Add(took), func() error {
			var err error
			lc, err = take(a)
			return err
		})
	}
	if lb.Valid() {
		e.t.Fatalf("expired lease still reports Valid")
	}
	if err := lb.Release(e.ctx); !errors.Is(err, election.ErrNotOwner) {
		e.t.Fatalf("Release of an expired lease = %v, want ErrNotOwner", err)
	}
	if l, err := b.b.Leader(e.ctx, "lease"); err != nil || l.Fence != lc.Fence() {
		e.t.Fatalf("stale Release changed the holder: %+v, %v", l, err)
	}
	if err := lc.Release(e.ctx); err != nil {
		e.t.Fatalf("Release: %v", err)
	}
}

// testInvalid: names and TTLs the backend cannot use are rejected with
// ErrInvalidArgument, never clamped.
func testInvalid(e *env) {
	n := e.newNode("inv")
	lim := n.b.Limits()
	maxLen := lim.MaxNameLen
	if maxLen == 0 {
		maxLen = election.DefaultMaxNameLen
	}
	bad := []string{"", strings.Repeat("x", maxLen+1), "bad\xffutf8", "ctl\x00char", "new\nline"}
	bad = append(bad, e.h.InvalidNames()...)
	for _, name := range bad {
		if _, err := n.el.NewCandidate(election.CandidateConfig{Name: name}); !errors.Is(err, election.ErrInvalidArgument) {
			e.t.Errorf("NewCandidate(%q) = %v, want ErrInvalidArgument", name, err)
		}
		if _, err := election.TryLease(e.ctx, n.b, name, e.timing.TTL); !errors.Is(err, election.ErrInvalidArgument) {
			e.t.Errorf("TryLease(%q) = %v, want ErrInvalidArgument", name, err)
		}
	}
	if lim.MinTTL > time.Millisecond {
		if _, err := election.New(n.b, election.Config{TTL: lim.MinTTL / 2}); !errors.Is(err, election.ErrInvalidArgument) {
			e.t.Errorf("New with TTL below the minimum %v = %v, want ErrInvalidArgument", lim.MinTTL, err)
		}
	}
	if g := lim.TTLGranularity; g > 0 {
		if _, err := election.New(n.b, election.Config{TTL: e.timing.TTL + g/2}); !errors.Is(err, election.ErrInvalidArgument) {
			e.t.Errorf("New with a TTL off the backend's %v unit = %v, want ErrInvalidArgument", g, err)
		}
	}
	if _, err := election.New(n.b, election.Config{TTL: -time.Second}); !errors.Is(err, election.ErrInvalidArgument) {
		e.t.Errorf("New with a negative TTL = %v, want ErrInvalidArgument", err)
	}
	if _, err := election.New(n.b, election.Config{TTL: e.timing.TTL, RenewInterval: e.timing.TTL}); !errors.Is(err, election.ErrInvalidArgument) {
		e.t.Errorf("New with RenewInterval = TTL: %v, want ErrInvalidArgument", err)
	}
	if _, err := election.New(nil, election.Config{}); !errors.Is(err, election.ErrInvalidArgument) {
		e.t.Errorf("New(nil backend) = %v, want ErrInvalidArgument", err)
	}
}
