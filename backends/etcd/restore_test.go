package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
)

// restoreCase is what happens across a snapshot restore of a one-member
// cluster: before the snapshot a session opens (so its lease is in the
// snapshot); after it, writes and claims move the revision on, one claim
// ("after") held by that session and so missing from the snapshot while
// its lease is not. Then the member is restored from the snapshot.
type restoreCase struct {
	b        *etcd.Backend
	addr     string
	held     election.Session // opened before the snapshot
	after    election.Claim   // made after the snapshot, by held
	topFence uint64           // the highest fence handed out before the restore
}

// restoreAcross runs the case, restoring with bumpRevision (0: without
// --bump-revision), and returns once the member serves again.
func restoreAcross(t *testing.T, bumpRevision uint64) restoreCase {
	t.Helper()
	m := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	admin := rawClient(t, m.addr)
	b := newBackend(t, etcd.Config{Endpoints: []string{m.addr}, DialTimeout: 10 * time.Second})
	held := openSession(t, b, time.Minute)

	snapshot := filepath.Join(t.TempDir(), "snapshot.db")
	saveSnapshot(ctx, t, admin, snapshot)

	rc := restoreCase{b: b, addr: m.addr, held: held}
	for i := range 20 {
		if _, err := admin.Put(ctx, fmt.Sprintf("other/%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	other := openSession(t, b, time.Minute)
	c := claim(t, other, "gone", "other")
	if err := other.Release(ctx, c); err != nil {
		t.Fatal(err)
	}
	rc.after = claim(t, held, "after", "held")
	rc.topFence = rc.after.Fence
	t.Logf("fences before the restore: %d, %d", c.Fence, rc.after.Fence)

	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Restore(t, snapshot, bumpRevision); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return rc
}

// saveSnapshot writes the member's snapshot to path, as `etcdctl snapshot
// save` does.
func saveSnapshot(ctx context.Context, t *testing.T, admin interface {
	Snapshot(context.Context) (io.ReadCloser, error)
}, path string) {
	t.Helper()
	r, err := admin.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, r); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// openSession opens a session on the restored member, closed when the
// test ends.
func (rc restoreCase) openSession(t *testing.T) election.Session {
	t.Helper()
	var s election.Session
	if err := untilServed(t, "OpenSession", func(ctx context.Context) (err error) {
		s, err = rc.b.OpenSession(ctx, time.Minute)
		return err
	}); err != nil {
		t.Fatalf("OpenSession after the restore: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// untilServed retries op while it fails with ErrUnavailable for any other
// reason than ErrRevisionWentBack: the client reconnects to the restarted
// member.
func untilServed(t *testing.T, what string, op func(context.Context) error) error {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := op(ctx)
		cancel()
		if err == nil || errors.Is(err, etcd.ErrRevisionWentBack) || !errors.Is(err, election.ErrUnavailable) {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still unavailable a minute after the restart: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRestoreWithoutBumpRefusesClaims: after the cluster is restored from a
// snapshot without --bump-revision, its revision is below fences already
// handed out. A claim is refused with ErrRevisionWentBack (which wraps
// ErrUnavailable and names the fix), leaving no entry behind; the session
// whose claim the snapshot lacks cannot renew it; and once writes carry
// the revision past every one the Backend saw, claims succeed again with
// fences above all earlier ones.
func TestRestoreWithoutBumpRefusesClaims(t *testing.T) {
	rc := restoreAcross(t, 0)
	ctx := testCtx(t)

	s := rc.openSession(t)
	var fence uint64
	err := untilServed(t, "Claim", func(ctx context.Context) error {
		c, err := s.Claim(ctx, election.ClaimRequest{Name: "fresh", Token: "token-fresh", ID: "fresh"})
		fence = c.Fence
		return err
	})
	if !errors.Is(err, etcd.ErrRevisionWentBack) || !errors.Is(err, election.ErrUnavailable) {
		t.Fatalf("Claim after a restore without --bump-revision: fence %d, err %v; want ErrRevisionWentBack (fences up to %d were handed out)", fence, err, rc.topFence)
	}
	if !strings.Contains(err.Error(), "--bump-revision") {
		t.Errorf("the error does not name the fix: %v", err)
	}
	t.Logf("claim refused: %v", err)
	if _, err := rc.b.Leader(ctx, "fresh"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("Leader(fresh) after the refused claim: %v, want ErrNoLeader (the entry taken back)", err)
	}

	// The session's lease is in the snapshot, its claim is not: the watch
	// saw no delete, so only the revision tells.
	err = untilServed(t, "Renew", func(ctx context.Context) error { return rc.held.Renew(ctx, []election.Claim{rc.after}) })
	if !errors.Is(err, etcd.ErrRevisionWentBack) {
		t.Fatalf("Renew of a claim the snapshot lacks: %v, want ErrRevisionWentBack", err)
	}
	t.Logf("renewal refused: %v", err)

	// Writes carry the revision past the highest fence seen: claims
	// succeed again, above it.
	admin := rawClient(t, rc.addr)
	for {
		resp, err := admin.Put(ctx, "other/filler", "x")
		if err != nil {
			t.Fatal(err)
		}
		if uint64(resp.Header.Revision) > rc.topFence {
			break
		}
	}
	c := claim(t, s, "fresh", "fresh")
	if c.Fence <= rc.topFence {
		t.Fatalf("fence %d after the revision caught up, want above %d", c.Fence, rc.topFence)
	}
}

// TestRestoreWithBumpClaims: after a restore with --bump-revision and
// --mark-compacted, claims succeed at once with fences above every one
// handed out before, and the claim the snapshot lacks is reported lost
// (the compaction makes the watch start over, and the session lists its
// lease's keys).
func TestRestoreWithBumpClaims(t *testing.T) {
	rc := restoreAcross(t, 1_000_000)

	s := rc.openSession(t)
	var c election.Claim
	if err := untilServed(t, "Claim", func(ctx context.Context) (err error) {
		c, err = s.Claim(ctx, election.ClaimRequest{Name: "fresh", Token: "token-fresh", ID: "fresh"})
		return err
	}); err != nil {
		t.Fatalf("Claim after a restore with --bump-revision: %v", err)
	}
	if c.Fence <= rc.topFence {
		t.Fatalf("fence %d after the restore, want above %d", c.Fence, rc.topFence)
	}
	err := untilServed(t, "Renew", func(ctx context.Context) error { return rc.held.Renew(ctx, []election.Claim{rc.after}) })
	var notOwner *election.NotOwnerError
	if !errors.As(err, &notOwner) {
		t.Fatalf("Renew of a claim the snapshot lacks: %v, want a NotOwnerError", err)
	}
}
