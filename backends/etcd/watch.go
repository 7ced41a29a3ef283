package etcd

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/electionkit/election"
)

// Watch reads the election key and then watches it from the next revision,
// so no change between the read and the watch is missed. The first event is
// the state read; then one event per create (a new term) and delete
// (release, revoke or lease expiry), in revision order.
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
	key := b.key(name)
	resp, err := b.client.Get(ctx, key)
	if err != nil {
		return nil, storeError("watch", name, err)
	}
	first := election.WatchEvent{}
	if len(resp.Kvs) > 0 {
		if first = b.putEvent(name, resp.Kvs[0]); first.Err != nil {
			return nil, first.Err
		}
	}

	watchCtx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	changes := b.client.Watch(watchCtx, key, clientv3.WithRev(resp.Header.Revision+1))
	out := make(chan election.WatchEvent, 1)
	out <- first
	go func() {
		defer close(out)
		defer cancel()
		b.forward(ctx, name, changes, out)
	}()
	return out, nil
}

// forward turns etcd watch responses into events on out until ctx ends, the
// Backend is closed or the watch fails.
func (b *Backend) forward(ctx context.Context, name string, changes clientv3.WatchChan, out chan<- election.WatchEvent) {
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
			for _, ev := range wr.Events {
				e := election.WatchEvent{} // a delete: vacant
				if ev.Type == mvccpb.PUT {
					e = b.putEvent(name, ev.Kv)
				}
				if !send(e) || e.Err != nil {
					return
				}
			}
		}
	}
}

// putEvent describes a key write; a value that is not an election record
// ends the watch with an error.
func (b *Backend) putEvent(name string, kv *mvccpb.KeyValue) election.WatchEvent {
	l, err := leaderOf(name, kv)
	if err != nil {
		return election.WatchEvent{Err: fmt.Errorf("etcd: watch %q: %w", name, err)}
	}
	return election.WatchEvent{Leader: &l}
}
