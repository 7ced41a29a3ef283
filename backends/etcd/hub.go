package etcd

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"
)

// hub is the one etcd watch of a Backend: every key under Prefix + "/",
// watched from one goroutine and dispatched to
//
//   - the per-name watchers of [Backend.Watch] (nameWatch), with no
//     goroutine per name: each gets a channel of capacity 1 that holds the
//     newest unread state;
//   - the sessions of the Backend, which learn that an entry they wrote was
//     deleted or overwritten by someone else (tracked), so that Renew
//     reports the claim lost without reading the lease's keys.
//
// The watch requires an etcd leader and a ready connection. When it fails
// (no leader, compaction, the connection lost, the Backend closed) every
// name watcher gets an error event and its
// channel is closed, and the hub starts a new watch from the revision after
// the last one it applied, so tracking continues without a gap. If that
// revision was compacted, the new watch starts at the current revision and
// coverage changes: entries tracked before the gap are checked once by
// listing the lease's keys (see session.Renew).
type hub struct {
	b    *Backend
	root string

	mu      sync.Mutex
	started bool
	done    chan struct{} // closed when run returns
	// changed is closed and replaced whenever established, progress or
	// coverage changes.
	changed chan struct{}
	// established is true from the created response of a watch until it
	// fails; watchCtx is that watch's context.
	established bool
	watchCtx    context.Context
	// lastErr is why the last watch failed, for name watchers that wait.
	lastErr error
	// epoch counts failed watches; a name watcher registered in an earlier
	// epoch has already been failed.
	epoch uint64
	// progress is the revision up to which every event under root has been
	// applied. It survives a watch that is resumed without a gap.
	progress int64
	// coverage names the current stretch of gapless watching: 0 while no
	// watch has started since the last gap, else a number never reused. A
	// tracked entry whose session recorded the current coverage, and every
	// change to it, has been seen up to progress.
	coverage     uint64
	lastCoverage uint64
	names        map[string][]*nameWatch // by escaped name
	tracked      map[string]tracker      // by entry key
	// pending are Notify watchers with events to deliver once the mutex
	// is released (see deliver).
	pending []*nameWatch
}

// tracker is the session that wrote an entry, and the token it wrote.
type tracker struct {
	s     *session
	token string
}

func newHub(b *Backend) *hub {
	return &hub{
		b:       b,
		root:    b.prefix + "/",
		changed: make(chan struct{}),
		names:   map[string][]*nameWatch{},
		tracked: map[string]tracker{},
	}
}

// start starts the watch if it is not running. It runs until the Backend
// is closed.
func (h *hub) start() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started {
		return
	}
	h.started = true
	h.done = make(chan struct{})
	go h.run()
}

// wait returns when run has returned, if it was started.
func (h *hub) wait() {
	h.mu.Lock()
	done := h.done
	h.mu.Unlock()
	if done != nil {
		<-done
	}
}

// broadcastLocked wakes everyone waiting for a change.
func (h *hub) broadcastLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// run keeps one watch on root until the Backend is closed, restarting it
// after a failure with a backoff of 100ms doubling to 2s.
func (h *hub) run() {
	defer close(h.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(h.b.life, cancel)
	defer stop()
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		err, compacted, applied := h.watchOnce(ctx)
		if ctx.Err() != nil {
			err = errBackendClosed
		}
		h.fail(err, compacted)
		if applied {
			delay = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
	h.fail(errBackendClosed, false)
}

// watchOnce runs one etcd watch until it fails. It reports whether the
// failure was a compaction of the revision it resumed from, and whether it
// applied any response (so the backoff can start over).
func (h *hub) watchOnce(ctx context.Context) (err error, compacted, applied bool) {
	// The etcd client resumes a watch on a new connection by itself, and
	// says nothing while it has none: a cut link would leave every
	// election's watch silent. So the watch starts on a ready connection
	// and ends as soon as the connection is no longer ready (the client's
	// keep-alive gives a dead link up after 5s + 3s).
	conn := h.b.client.ActiveConnection()
	for st := conn.GetState(); st != connectivity.Ready; st = conn.GetState() {
		if st == connectivity.Idle {
			conn.Connect()
		}
		if !conn.WaitForStateChange(ctx, st) {
			return ctx.Err(), false, false
		}
	}
	wctx, cancel := context.WithCancelCause(clientv3.WithRequireLeader(ctx))
	defer cancel(nil)
	go func() {
		if conn.WaitForStateChange(wctx, connectivity.Ready) {
			cancel(errConnectionLost)
		}
	}()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCreatedNotify()}
	h.mu.Lock()
	h.watchCtx = wctx
	resume := h.coverage != 0
	if resume {
		opts = append(opts, clientv3.WithRev(h.progress+1))
	}
	h.mu.Unlock()
	for wr := range h.b.client.Watch(wctx, h.root, opts...) {
		if err := context.Cause(wctx); err != nil && ctx.Err() == nil {
			return err, false, applied
		}
		if err := wr.Err(); err != nil {
			return err, wr.CompactRevision != 0, applied
		}
		if wr.Canceled {
			return errors.New("watch cancelled by the server"), false, applied
		}
		if wr.Created && resume && wr.Header.Revision < h.resumedFrom() {
			// The cluster is behind the revision the watch resumes from:
			// restored without bumped revisions. Resuming would see
			// nothing until the cluster gets there, so start over as
			// after a compaction, and let the sessions list their keys.
			return errRevisionBehind, true, applied
		}
		applied = true
		h.b.guard.observe(wr.Header)
		h.apply(wr, resume)
	}
	if err := context.Cause(wctx); err != nil && ctx.Err() == nil {
		return err, false, applied
	}
	return errors.New("watch channel closed"), false, applied
}

var (
	errConnectionLost = errors.New("connection to etcd lost")
	errRevisionBehind = errors.New("the cluster's revision is below the one the watch resumes from (restored?)")
)

// resumedFrom returns the revision up to which events have been applied.
func (h *hub) resumedFrom() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.progress
}

// apply takes one watch response into the hub's state.
func (h *hub) apply(wr clientv3.WatchResponse, resumed bool) {
	h.mu.Lock()
	defer h.deliver()
	defer h.mu.Unlock()
	if wr.Created {
		h.established = true
		if !resumed {
			// A new watch from the current revision: a new stretch of
			// coverage starts here.
			h.lastCoverage++
			h.coverage = h.lastCoverage
			h.progress = wr.Header.Revision
		}
		h.broadcastLocked()
		return
	}
	var dirty []*nameWatch
	for i, ev := range wr.Events {
		key := string(ev.Kv.Key)
		if t, ok := h.tracked[key]; ok && changedUnder(ev, t) {
			t.s.markGone(t.token, key)
			delete(h.tracked, key)
		}
		for _, w := range h.names[escapedNameOf(h.root, key)] {
			if w.take(ev) && !w.dirty {
				w.dirty = true
				dirty = append(dirty, w)
			}
		}
		// The holder is judged after the last event of each revision, so
		// no term is skipped and no state is shown that never existed (a
		// lease revoke deletes several entries at one revision).
		if i+1 < len(wr.Events) && wr.Events[i+1].Kv.ModRevision == ev.Kv.ModRevision {
			continue
		}
		for _, w := range dirty {
			w.dirty = false
			w.publish(h)
		}
		dirty = dirty[:0]
	}
	if rev := wr.Header.Revision; rev > h.progress {
		h.progress = rev
		h.broadcastLocked()
	}
}

// changedUnder reports whether ev ends the claim of entry t: a delete, or a
// put by someone else that moved the entry to another lease or another
// token. The put that created the entry is the session's own.
func changedUnder(ev *clientv3.Event, t tracker) bool {
	if ev.Type == mvccpb.DELETE {
		return true
	}
	kv := ev.Kv
	if kv.ModRevision == kv.CreateRevision {
		return false
	}
	if clientv3.LeaseID(kv.Lease) != t.s.lease {
		return true
	}
	r, err := decodeRecord(kv)
	return err != nil || r.Token != t.token
}

// escapedNameOf returns the escaped election name of an entry key under
// root, or "" when key is not an entry of an election of this prefix (an
// entry of a longer prefix has a '/' in it, which no escaped name has).
func escapedNameOf(root, key string) string {
	rest, ok := strings.CutPrefix(key, root)
	if !ok {
		return ""
	}
	i := strings.Index(rest, entryMarker)
	if i <= 0 {
		return ""
	}
	return rest[:i]
}

// fail ends every name watcher with an error event wrapping
// election.ErrUnavailable and closes its channel. After a compaction the
// next watch cannot resume, so coverage ends.
func (h *hub) fail(cause error, compacted bool) {
	h.mu.Lock()
	defer h.deliver()
	defer h.mu.Unlock()
	h.established = false
	h.lastErr = cause
	h.epoch++
	if compacted {
		h.coverage = 0
	}
	for esc, ws := range h.names {
		for _, w := range ws {
			w.fail(h, cause)
		}
		delete(h.names, esc)
	}
	h.broadcastLocked()
}

// track records that session s is about to write entry key for token, so
// that a delete or an overwrite by anyone else is noticed. It returns the
// current coverage (0 when none: the entry must then be checked by
// listing the lease's keys once).
func (h *hub) track(key string, s *session, token string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tracked[key] = tracker{s: s, token: token}
	return h.coverage
}

// untrack forgets entry key.
func (h *hub) untrack(keys ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range keys {
		delete(h.tracked, k)
	}
}

// currentCoverage returns the coverage now.
func (h *hub) currentCoverage() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.coverage
}

// awaitProgress waits until every event up to rev has been applied in a
// stretch of coverage, asking etcd for a progress notification when the
// watch has seen nothing newer (an idle prefix sends no events). It
// returns that coverage, or 0 when ctx ends first.
func (h *hub) awaitProgress(ctx context.Context, rev int64) uint64 {
	asked := false
	for {
		h.mu.Lock()
		ok := h.established && h.coverage != 0 && h.progress >= rev
		cov, changed, established, watchCtx := h.coverage, h.changed, h.established, h.watchCtx
		h.mu.Unlock()
		if ok {
			return cov
		}
		if established && !asked {
			// The request goes on the stream whose context carries the
			// same metadata as the watch's: a context derived from it,
			// ended with ctx.
			rctx, cancel := context.WithCancel(watchCtx)
			stop := context.AfterFunc(ctx, cancel)
			if err := h.b.client.RequestProgress(rctx); err == nil {
				asked = true
			}
			stop()
			cancel()
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0
		}
	}
}

// awaitEstablished waits until a watch is established and returns its
// epoch. It fails with the watch's error when an attempt fails, and with
// ctx's when ctx ends first.
func (h *hub) awaitEstablished(ctx context.Context) (uint64, error) {
	h.mu.Lock()
	epoch := h.epoch
	h.mu.Unlock()
	for {
		h.mu.Lock()
		established, changed, cur, lastErr := h.established, h.changed, h.epoch, h.lastErr
		h.mu.Unlock()
		switch {
		case established:
			return cur, nil
		case cur != epoch:
			return 0, lastErr
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
