package consul

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

// minQueryGap is the shortest time between two blocking queries of a watch
// that saw no change. Consul's docs ask clients to rate-limit blocking
// queries: a key that is absent wakes its query on every write anywhere in
// the KV store (its index is the store's), and a buggy index could make
// queries return at once. A change that lands during the gap is reported
// by the next query, which then returns immediately.
const minQueryGap = 50 * time.Millisecond

// Watch streams the holder of the election name using blocking queries on
// its key. The first event is the state when the watch starts; after it,
// each query waits (Config.WatchWait) for the key's index to move past the
// last one seen, so a release, claim or session expiry (Consul deletes the
// key) is reported when that query returns. Changes that happen while an
// event waits to be received are coalesced into the newest state. When
// Consul's index goes backwards (a server restored or rebuilt) the watch
// starts over from index 0, as Consul's docs prescribe.
//
// The channel is closed when ctx ends or the backend is closed. If a query
// fails, or does not return within about WatchWait × 1.3 + 1s (a dead link),
// one event with Err (wrapping [election.ErrUnavailable], or
// [election.ErrInvalidArgument] for a rejected token) is sent and the
// channel is closed.
func (b *Backend) Watch(ctx context.Context, name string) (<-chan election.WatchEvent, error) {
	if err := b.check(name); err != nil {
		return nil, err
	}
	if !b.track() {
		return nil, errClosed
	}
	ch := make(chan election.WatchEvent)
	wctx, cancel := context.WithCancel(ctx)
	stopOnClose := context.AfterFunc(b.life, cancel)
	go func() {
		defer b.watches.Done()
		defer close(ch)
		defer stopOnClose()
		defer cancel()
		b.watch(wctx, name, ch)
	}()
	return ch, nil
}

// watchState is what a watch last reported: the holder's session and the
// key's ModifyIndex identify a term.
type watchState struct {
	held    bool
	session string
	index   uint64
}

func (b *Backend) watch(ctx context.Context, name string, ch chan<- election.WatchEvent) {
	what := fmt.Sprintf("watch %q", name)
	key := b.Key(name)
	var (
		index uint64
		last  watchState
		first = true
	)
	for {
		started := time.Now()
		p, meta, err := b.blockingGet(ctx, key, index)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			send(ctx, ch, election.WatchEvent{Err: storeErr(what, err)})
			return
		}
		l, _, held, err := holder(name, p)
		if err != nil {
			send(ctx, ch, election.WatchEvent{Err: err})
			return
		}
		now := watchState{held: held}
		if held {
			now.session, now.index = p.Session, p.ModifyIndex
		}
		if first || now != last {
			ev := election.WatchEvent{}
			if held {
				ev.Leader = &l
			}
			if !send(ctx, ch, ev) {
				return
			}
			first, last = false, now
		} else if gap := minQueryGap - time.Since(started); gap > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(gap):
			}
		}
		index = nextIndex(index, meta.LastIndex)
	}
}

// nextIndex applies Consul's rules for the index of the next blocking
// query: start over if the index went backwards, and never block on 0.
func nextIndex(prev, got uint64) uint64 {
	switch {
	case got < prev:
		return 0
	case got == 0:
		return 1
	}
	return got
}

// blockingGet reads key, waiting for its index to pass index (0: no wait).
// Its own deadline detects a link that stopped answering: Consul answers a
// blocking query after at most wait + wait/16 of jitter.
func (b *Backend) blockingGet(ctx context.Context, key string, index uint64) (*api.KVPair, *api.QueryMeta, error) {
	wait := b.s.watchWait
	ctx, cancel := context.WithTimeout(ctx, wait+wait/16+wait/4+time.Second)
	defer cancel()
	q := b.query(ctx)
	q.WaitIndex, q.WaitTime = index, wait
	return b.client.KV().Get(key, q)
}

func send(ctx context.Context, ch chan<- election.WatchEvent, ev election.WatchEvent) bool {
	select {
	case ch <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
