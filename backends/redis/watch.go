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
// A subscription that breaks and is back within two
// Config.SubscriptionCheck periods (go-redis reconnects at once after a
// killed connection or a quick restart) does not end the watch: every
// watched election is read again once the subscription is confirmed. One
// that stays down longer, or goes silent (no answer to a ping for two
// periods), ends the watch with one event whose Err wraps
// [election.ErrUnavailable], and the channel closes; so does Backend.Close.
// The channel also closes when ctx ends. Watch itself returns an error
// wrapping [election.ErrUnavailable] when the server cannot be reached, or
// [election.ErrInvalidArgument] when it rejects the credentials. A watch
// costs no goroutine.
func (b *Backend) Watch(ctx context.Context, name string) (<-chan election.WatchEvent, error) {
	w := newWatcher(name)
	stop, err := b.watch(ctx, w)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, stop)
	return w.Out, nil
}

var _ election.Notifier = (*Backend)(nil)

// Notify is [Backend.Watch] with a function in place of a channel
// ([election.Notifier]): fn gets the events Watch would send, in the same
// order, never two calls at once, and never with a lock of the Backend
// held; a newer state replaces one not yet delivered. ctx bounds the
// set-up only: after stop, fn is not called again once a call in progress
// returns, and the Backend keeps nothing of the watch. Errors as Watch's.
func (b *Backend) Notify(ctx context.Context, name string, fn func(election.WatchEvent)) (stop func(), err error) {
	return b.watch(ctx, newNotifyWatcher(name, fn))
}

// watch establishes w (it joins its election's topic, then reads the
// election) and returns the function that ends it.
func (b *Backend) watch(ctx context.Context, w *watcher) (stop func(), err error) {
	h, err := b.currentHub()
	if err != nil {
		return nil, storeError("watch", w.Name, err)
	}
	if err := h.join(w); err != nil {
		return nil, storeError("watch", w.Name, err)
	}
	st, err := b.read(ctx, w.Name)
	if err != nil {
		h.leave(w)
		return nil, err
	}
	h.first(w, st)
	return func() {
		h.leave(w)
		w.Close()
	}, nil
}
