package redis

import (
	"context"

	"github.com/electionkit/election"
)

// Watch streams the holder of name through the Backend's one subscription
// to its prefix's channel: it joins the election's topic, then reads the
// election, so no claim or release falls in between (if the subscription
// is not confirmed yet, the re-read that follows its confirmation covers
// the gap). The first event is that read, then one event per claim,
// release and end of the holder's session (a slow reader gets the newest
// state, never an older one after a newer). Redis announces no expiry: the
// Backend keeps one timer per holding session, not per election
// (holders.go), and reports the vacancy itself, so ExpiresIn is always
// zero. An election whose key holds a value that is not a claim record
// shows a Leader with only the election's name: held by an unknown
// writer.
//
// A broken subscription does not end the watch: go-redis reconnects, and
// every watched election is read again once the subscription is confirmed.
// The channel closes when ctx ends; if the Backend closes first, the last
// event has Err wrapping [election.ErrUnavailable]. Watch itself returns
// an error wrapping [election.ErrUnavailable] when the server cannot be
// reached, or [election.ErrInvalidArgument] when it rejects the
// credentials. A watch costs no goroutine.
func (b *Backend) Watch(ctx context.Context, name string) (<-chan election.WatchEvent, error) {
	h, err := b.currentHub()
	if err != nil {
		return nil, storeError("watch", name, err)
	}
	w := newWatcher(name)
	if err := h.join(w); err != nil {
		return nil, storeError("watch", name, err)
	}
	st, err := b.read(ctx, name)
	if err != nil {
		h.leave(w)
		return nil, err
	}
	h.first(w, st)
	context.AfterFunc(ctx, func() {
		h.leave(w)
		w.close()
	})
	return w.out, nil
}
