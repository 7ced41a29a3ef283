package etcd

import (
	"fmt"
	"sync"

	"go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/electionkit/election"
)

// ErrRevisionWentBack is wrapped by the error of a claim (and of a renewal)
// made while the cluster's revision is below one this Backend saw before:
// the cluster was restored from a snapshot or a copy of its data directory
// without bumping its revisions, so the revisions it hands out now, and
// with them fences, repeat ones already handed out. The fix is to restore
// again with
//
//	etcdutl snapshot restore --bump-revision N --mark-compacted
//
// N above the number of revisions written since the snapshot (a large value
// such as 1000000000 is safe), or, failing that, to wait until the
// revision passes the one in the error. It wraps election.ErrUnavailable:
// the core keeps campaigning, and claims succeed again once the revision is
// above every one this Backend saw.
var ErrRevisionWentBack = fmt.Errorf("etcd: the cluster's revision went backwards (restored without --bump-revision?): %w", election.ErrUnavailable)

// revisionGuard remembers the highest revision and the cluster ID seen in
// any answer of the cluster, and tells when a linearizable answer shows a
// lower revision than one seen before the request was sent, which no etcd
// cluster does unless it was restored without bumping revisions.
//
// Only revisions seen before a request was sent count against its answer:
// answers to concurrent requests may arrive in any order. Any committed
// revision is a floor (a linearizable request sent after it was seen is
// answered at that revision or later), whatever the answer that showed it:
// a keep-alive, a watch event, a read.
type revisionGuard struct {
	mu      sync.Mutex
	highest int64
	cluster uint64
}

// floor returns the highest revision seen so far, for a request about to
// be sent.
func (g *revisionGuard) floor() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.highest
}

// observe takes the revision and cluster ID of an answer in, without
// judging it (an answer that may come from a lagging member).
func (g *revisionGuard) observe(h *etcdserverpb.ResponseHeader) {
	if h == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.highest = max(g.highest, h.Revision)
	if h.ClusterId != 0 {
		g.cluster = h.ClusterId
	}
}

// check judges the answer to a linearizable request sent when the highest
// revision seen was floor, and takes it in. It returns an error wrapping
// ErrRevisionWentBack, naming both revisions (and both cluster IDs if the
// cluster changed), when the answer's revision is below floor.
func (g *revisionGuard) check(op, name string, floor int64, h *etcdserverpb.ResponseHeader) error {
	if h == nil {
		return nil
	}
	g.mu.Lock()
	was := g.cluster
	g.mu.Unlock()
	g.observe(h)
	if h.Revision >= floor {
		return nil
	}
	what := "etcd: " + op
	if name != "" {
		what = fmt.Sprintf("etcd: %s %q", op, name)
	}
	cluster := ""
	if was != 0 && h.ClusterId != was {
		cluster = fmt.Sprintf(" and cluster ID %x (was %x)", h.ClusterId, was)
	}
	return fmt.Errorf("%s: %w: revision %d%s, after %d was seen: fences could repeat; restore with `etcdutl snapshot restore --bump-revision N --mark-compacted` (N above the revisions lost), or wait until the revision passes %d",
		what, ErrRevisionWentBack, h.Revision, cluster, floor, floor)
}
