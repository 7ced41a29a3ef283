package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
)

// hub is a Backend's one pub/sub connection, multiplexing the channels of
// every watched election: it subscribes a channel when its first watcher
// joins and unsubscribes it when the last one leaves. A hub never
// reconnects: when the connection breaks (server restart, silent link) it
// fails every watcher and ends; the next Watch starts a new hub.
type hub struct {
	backend *Backend
	ps      *goredis.PubSub
	check   time.Duration // see Config.SubscriptionCheck

	mu     sync.Mutex
	topics map[string]*topic // by channel
	// pending counts SUBSCRIBE commands whose confirmation has not been
	// read yet, by channel: a channel is live for a new topic only when
	// the confirmation of its own SUBSCRIBE arrived, not that of an
	// earlier SUBSCRIBE undone by an UNSUBSCRIBE in between.
	pending map[string]int
	cause   error         // why the hub failed; nil while it works
	broken  chan struct{} // closed when cause is set
}

// topic is one subscribed election channel.
type topic struct {
	election string
	watchers map[*watcher]struct{}
	ready    chan struct{} // closed when the server confirmed the subscription
	isReady  bool
}

// newHub starts a hub's receive loop, counted in b.loops. The caller holds
// b.mu and has checked that b is not closed.
func newHub(b *Backend) *hub {
	h := &hub{
		backend: b,
		ps:      b.client.Subscribe(context.Background()), // no channel yet: no I/O
		check:   b.cfg.SubscriptionCheck,
		topics:  map[string]*topic{},
		pending: map[string]int{},
		broken:  make(chan struct{}),
	}
	b.loops.Add(1)
	go h.loop()
	return h
}

// join adds w to its election's topic, subscribing the channel if w is the
// first watcher. The returned channel closes when the subscription is live.
func (h *hub) join(w *watcher) (<-chan struct{}, error) {
	h.mu.Lock()
	if h.cause != nil {
		defer h.mu.Unlock()
		return nil, h.cause
	}
	t := h.topics[w.channel]
	if t == nil {
		t = &topic{election: w.name, watchers: map[*watcher]struct{}{}, ready: make(chan struct{})}
		h.topics[w.channel] = t
		h.pending[w.channel]++
		// Under h.mu, so that SUBSCRIBE and UNSUBSCRIBE of one channel
		// reach the server in the order pending assumes. Not under the
		// caller's ctx: its cancellation mid-write would break the
		// connection every watcher shares (the write timeout bounds it).
		if err := h.ps.Subscribe(context.Background(), w.channel); err != nil {
			h.mu.Unlock()
			h.fail(err)
			return nil, err
		}
	}
	t.watchers[w] = struct{}{}
	h.mu.Unlock()
	return t.ready, nil
}

// leave removes w, unsubscribing its channel if w was the last watcher.
func (h *hub) leave(w *watcher) {
	h.mu.Lock()
	t := h.topics[w.channel]
	if h.cause != nil || t == nil {
		h.mu.Unlock()
		return
	}
	delete(t.watchers, w)
	if len(t.watchers) > 0 {
		h.mu.Unlock()
		return
	}
	delete(h.topics, w.channel)
	err := h.ps.Unsubscribe(context.Background(), w.channel)
	h.mu.Unlock()
	if err != nil {
		h.fail(err)
	}
}

// fail marks the hub broken by cause, ends every watch with an error event
// and closes the connection, which ends the loop. Only the first call acts.
func (h *hub) fail(cause error) {
	h.mu.Lock()
	if h.cause != nil {
		h.mu.Unlock()
		return
	}
	h.cause = cause
	close(h.broken)
	topics := h.topics
	h.topics = nil
	h.mu.Unlock()

	for _, t := range topics {
		for w := range t.watchers {
			w.fail(cause)
		}
	}
	_ = h.ps.Close()
	h.backend.dropHub(h)
}

func (h *hub) failed() bool { return h.failure() != nil }

// failure returns why the hub failed, nil while it works.
func (h *hub) failure() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cause
}

// errSilent is the cause when the server answered neither a message nor a
// ping for two SubscriptionCheck periods.
var errSilent = errors.New("redis: subscription silent: ping not answered")

// loop reads the connection until it fails. A read that times out sends a
// ping; a second timeout in a row means the link is dead even if TCP has
// not noticed.
func (h *hub) loop() {
	defer h.backend.loops.Done()
	ctx := context.Background()
	pinged := false
	for {
		msg, err := h.ps.ReceiveTimeout(ctx, h.check)
		if err != nil {
			if h.failed() {
				return
			}
			if !isTimeout(err) {
				h.fail(err)
				return
			}
			if pinged {
				h.fail(fmt.Errorf("%w within %v: %w", errSilent, 2*h.check, err))
				return
			}
			pinged = true
			if err := h.ps.Ping(ctx); err != nil {
				h.fail(err)
				return
			}
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				h.confirm(m.Channel)
			}
		case *goredis.Message:
			h.dispatch(m)
		}
	}
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// confirm marks channel live once the last SUBSCRIBE sent for it is
// confirmed.
func (h *hub) confirm(channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pending[channel]--
	if h.pending[channel] > 0 {
		return
	}
	delete(h.pending, channel)
	if t := h.topics[channel]; t != nil && !t.isReady {
		t.isReady = true
		close(t.ready)
	}
}

// dispatch hands an announcement to the watchers of its channel. Payloads
// that are not announcements (someone else publishing on the channel) are
// ignored.
func (h *hub) dispatch(m *goredis.Message) {
	var a announcement
	if err := json.Unmarshal([]byte(m.Payload), &a); err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[m.Channel]
	if t == nil {
		return
	}
	var ev election.WatchEvent
	var version uint64
	switch a.Kind {
	case kindClaim:
		ev.Leader = &election.Leader{Election: t.election, ID: a.ID, Metadata: a.Metadata, Fence: a.Fence}
		ev.ExpiresIn = time.Duration(a.TTLMilli) * time.Millisecond
		version = claimVersion(a.Fence)
	case kindRelease:
		version = releaseVersion(a.Fence)
	default:
		return
	}
	for w := range t.watchers {
		each := ev
		if ev.Leader != nil {
			leader := *ev.Leader // one copy per watcher; Metadata is read-only
			each.Leader = &leader
		}
		w.offer(each, version)
	}
}
