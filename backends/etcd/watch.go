package etcd

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/electionkit/election"
)

// Watch reads the election's entries and then watches its range from the
// next revision, so no change between the read and the watch is missed. It
// keeps the set of entries and sends an event whenever the holder (the
// entry with the lowest create revision) changes: the first event is the
// state read; then one per new term and one per vacancy, in revision
// order. Entries joining or leaving the line behind the holder send
// nothing.
//
// The watch requires an etcd leader: a member cut off from the quorum ends
// it instead of going silent. On any failure (no leader, compaction, closed
// connection, [Backend.Close]) it sends one event whose Err wraps
// election.ErrUnavailable and the cause, then closes the channel. When ctx
// ends the channel is closed and no goroutine is left.
//
// Errors: election.ErrUnavailable when the initial read fails.
func (b *Backend) Watch(ctx context.Context, name string) (<-chan election.WatchEvent, error) {
	if err := b.errIfClosed("watch", name); err != nil {
		return nil, err
	}
	rng := b.rangeOf(name)
	resp, err := b.client.Get(ctx, rng, clientv3.WithPrefix())
	if err != nil {
		return nil, storeError("watch", name, err)
	}
	line := entries{}
	for _, kv := range resp.Kvs {
		line[string(kv.Key)] = kv
	}
	head := line.head()
	first := b.event(name, head)
	if first.Err != nil {
		return nil, first.Err
	}

	watchCtx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	changes := b.client.Watch(watchCtx, rng, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	out := make(chan election.WatchEvent, 1)
	out <- first
	go func() {
		defer close(out)
		defer cancel()
		b.forward(ctx, name, line, head, changes, out)
	}()
	return out, nil
}

// entries are the entries of one election, by key.
type entries map[string]*mvccpb.KeyValue

// head returns the entry with the lowest create revision: the holder. It
// returns nil when there is none.
func (e entries) head() *mvccpb.KeyValue {
	var h *mvccpb.KeyValue
	for _, kv := range e {
		if h == nil || kv.CreateRevision < h.CreateRevision {
			h = kv
		}
	}
	return h
}

// forward applies etcd watch responses to line and sends an event on out
// each time its head changes, until ctx ends, the Backend is closed or the
// watch fails. head is the head already reported.
func (b *Backend) forward(ctx context.Context, name string, line entries, head *mvccpb.KeyValue, changes clientv3.WatchChan, out chan<- election.WatchEvent) {
	send := func(ev election.WatchEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
		case <-b.closed:
		}
		return false
	}
	// fail delivers the final error event. Once the Backend is closed
	// nobody may be reading, so it is then delivered only if the buffer has
	// room: Close never waits for a reader.
	fail := func(cause error) {
		ev := election.WatchEvent{Err: storeError("watch", name, cause)}
		select {
		case out <- ev:
		default:
			send(ev)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.closed:
			fail(errBackendClosed)
			return
		case wr, ok := <-changes:
			switch {
			case ctx.Err() != nil:
				return
			case !ok:
				fail(errors.New("watch channel closed"))
				return
			case wr.Err() != nil:
				fail(wr.Err())
				return
			}
			// Events of one response may span revisions; the head is
			// checked after the last event of each revision, so no term
			// is skipped and no state is shown that never existed (a
			// lease revoke deletes several entries at one revision).
			for i, ev := range wr.Events {
				if ev.Type == mvccpb.PUT {
					line[string(ev.Kv.Key)] = ev.Kv
				} else {
					delete(line, string(ev.Kv.Key))
				}
				if i+1 < len(wr.Events) && wr.Events[i+1].Kv.ModRevision == ev.Kv.ModRevision {
					continue
				}
				next := line.head()
				if sameEntry(next, head) {
					continue
				}
				head = next
				e := b.event(name, head)
				if !send(e) || e.Err != nil {
					return
				}
			}
		}
	}
}

func sameEntry(a, b *mvccpb.KeyValue) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.CreateRevision == b.CreateRevision
}

// event describes the holder kv (nil: vacant); a value that is not an
// election record ends the watch with an error.
func (b *Backend) event(name string, kv *mvccpb.KeyValue) election.WatchEvent {
	if kv == nil {
		return election.WatchEvent{}
	}
	l, err := leaderOf(name, kv)
	if err != nil {
		return election.WatchEvent{Err: fmt.Errorf("etcd: watch %q: %w", name, err)}
	}
	return election.WatchEvent{Leader: &l}
}
