package redis

import (
	"context"

	"github.com/electionkit/election"
)

// Watch streams the holder of name through the Backend's one shared
// subscription. It subscribes the election's channel first and reads the
// election once the server confirmed it, so no claim or release falls in
// between; the first event is that read, then one event per claim and
// release (a slow reader gets the newest state, never an older one after a
// newer). Redis pushes no expiry: each event with a holder carries its
// remaining TTL in ExpiresIn.
//
// The channel closes when ctx ends. If the subscription breaks (server
// restart, link silent for two Config.SubscriptionCheck periods) or the
// Backend closes, the last event has Err wrapping [election.ErrUnavailable]
// and the channel closes. Watch itself returns an error wrapping
// [election.ErrUnavailable] when the server cannot be reached, or
// [election.ErrInvalidArgument] when it rejects the credentials.
func (b *Backend) Watch(ctx context.Context, name string) (<-chan election.WatchEvent, error) {
	h, err := b.currentHub()
	if err != nil {
		return nil, storeError("watch", name, err)
	}
	w := newWatcher(name, keysFor(b.cfg.Prefix, name).channel)
	ready, err := h.join(w)
	if err != nil {
		return nil, storeError("watch", name, err)
	}
	select {
	case <-ready:
	case <-h.broken:
		return nil, storeError("watch", name, h.failure())
	case <-ctx.Done():
		h.leave(w)
		return nil, storeError("watch", name, ctx.Err())
	}
	st, err := b.read(ctx, name)
	if err != nil {
		h.leave(w)
		return nil, err
	}
	w.offer(election.WatchEvent{Leader: st.leader, ExpiresIn: st.expiresIn}, st.version)

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		h.leave(w)
		return nil, storeError("watch", name, errClosed)
	}
	b.watchers.Add(1)
	b.mu.Unlock()
	go w.run(ctx, b.closing, func() {
		h.leave(w)
		b.watchers.Done()
	})
	return w.out, nil
}

// currentHub returns the shared subscription, starting one if there is none
// (first Watch, or the previous one broke).
func (b *Backend) currentHub() (*hub, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	if b.hub == nil {
		b.hub = newHub(b)
	}
	return b.hub, nil
}

// dropHub forgets h after it failed, so that the next Watch starts anew.
func (b *Backend) dropHub(h *hub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hub == h {
		b.hub = nil
	}
}
