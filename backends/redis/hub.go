package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/recordfmt"
	"github.com/electionkit/election/internal/watchq"
)

// hub is a Backend's one subscription, to its prefix's one channel, and
// what it knows from it: the state of every watched election (topics), a
// timer per session that holds a watched election (holders.go), and the
// claims this Backend's sessions hold (local.go), which announcements of
// newer terms mark lost.
//
// The subscription is never torn down by a watch: it lives from the first
// OpenSession or Watch until Backend.Close. go-redis reconnects it after a
// broken connection (the hub replaces it after a silent one), and every
// confirmation of the subscription re-reads every watched election and
// every local claim (resync), since Redis drops what is published while a
// subscriber is away. A subscription that is back within outageLimit (a
// killed connection, a quick restart) costs the watches nothing but that
// re-read; one that stays down longer, or goes silent, fails every watch
// with an error wrapping [election.ErrUnavailable], so that the core knows
// it is blind, and the core watches again.
type hub struct {
	backend *Backend
	keys    keys
	check   time.Duration // see Config.SubscriptionCheck

	mu      sync.Mutex
	ps      *goredis.PubSub
	closed  bool
	topics  map[string]*topic      // watched elections, by name
	holders *watchq.Holders        // sessions holding a watched election, by ID
	local   map[string]*localClaim // this Backend's claims, by election name
	lost    int                    // local claims marked lost
	// synced: the subscription is confirmed and every state read since,
	// so announcements tell of every change. Renew checks claims in the
	// store while it is false.
	synced bool
	// epoch counts confirmations and disconnections; a resync applies only
	// if none happened while it read.
	epoch        uint64
	resyncWanted bool
	resyncing    bool
	// downSince is when the subscription broke; zero while it works. A
	// subscription down for longer than outageLimit fails every watch:
	// outage is the timer that does it.
	downSince time.Time
	outage    *time.Timer
	// toFlush are Notify watchers with a state queued under mu, to be
	// delivered once mu is released (flushPending).
	toFlush []*watcher
}

// topic is one watched election: its newest state and its watchers.
type topic struct {
	watchers []*watcher
	seen     bool
	st       state
}

func newHub(b *Backend) *hub {
	h := &hub{
		backend: b,
		keys:    keysFor(b.cfg.Prefix),
		check:   b.cfg.SubscriptionCheck,
		topics:  map[string]*topic{},
		local:   map[string]*localClaim{},
	}
	h.holders = watchq.NewHolders(h.checkHolder)
	h.ps = b.client.Subscribe(context.Background(), h.keys.channel)
	b.loops.Add(1)
	go h.loop()
	return h
}

// close ends the subscription, stops every holder timer and ends every
// watch with an error event.
func (h *hub) close() {
	defer h.flushPending()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	ps := h.ps
	if h.outage != nil {
		h.outage.Stop()
	}
	h.failWatchersLocked(errClosed)
	h.mu.Unlock()
	_ = ps.Close()
}

// failWatchersLocked ends every watch with an error event wrapping
// ErrUnavailable and cause, and forgets them and their holders' timers.
func (h *hub) failWatchersLocked(cause error) {
	for _, t := range h.topics {
		for _, w := range t.watchers {
			if w.Fail(cause) {
				h.toFlush = append(h.toFlush, w)
			}
		}
	}
	h.topics = map[string]*topic{}
	h.holders.DropAll()
}

// flushPending delivers the states queued for Notify watchers. Every hub
// entry point that may queue one calls it after releasing h.mu.
func (h *hub) flushPending() {
	h.mu.Lock()
	ws := h.toFlush
	h.toFlush = nil
	h.mu.Unlock()
	for _, w := range ws {
		w.Flush()
	}
}

// outageLimit is how long the subscription may stay down before every watch
// fails: two SubscriptionCheck periods, as long as a silent link takes to be
// found.
func (h *hub) outageLimit() time.Duration { return 2 * h.check }

// isSynced reports whether announcements currently tell of every change.
func (h *hub) isSynced() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.synced
}

// errSilent is the cause when the server answered neither a message nor a
// ping for two SubscriptionCheck periods.
var errSilent = errors.New("redis: subscription silent: ping not answered")

// loop reads the subscription until the hub closes. A read that times out
// sends a ping; a second timeout in a row means the link is dead even if
// TCP has not noticed, and the subscription is replaced. Other errors are
// retried with backoff: go-redis dials again and resubscribes.
func (h *hub) loop() {
	defer h.backend.loops.Done()
	ctx := context.Background()
	pinged := false
	failures := 0
	for {
		h.mu.Lock()
		ps, closed := h.ps, h.closed
		h.mu.Unlock()
		if closed {
			return
		}
		msg, err := ps.ReceiveTimeout(ctx, h.check)
		if err != nil {
			if h.isClosed() {
				return
			}
			if isTimeout(err) && !pinged {
				pinged = true
				_ = ps.Ping(ctx) // a failure shows in the next receive
				continue
			}
			pinged = false
			if isTimeout(err) {
				cause := fmt.Errorf("%w within %v: %w", errSilent, 2*h.check, err)
				h.disconnected(cause, true)
				h.replace(ps)
				continue
			}
			h.disconnected(err, false)
			failures++
			if !h.sleep(backoff(h.check, failures)) {
				return
			}
			continue
		}
		pinged, failures = false, 0
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" && m.Channel == h.keys.channel {
				h.resubscribed()
			}
		case *goredis.Message:
			h.dispatch(m.Payload)
		}
	}
}

// replace closes a silent subscription and starts a new one.
func (h *hub) replace(old *goredis.PubSub) {
	_ = old.Close()
	ps := h.backend.client.Subscribe(context.Background(), h.keys.channel)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		_ = ps.Close()
		return
	}
	h.ps = ps
}

func (h *hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// sleep waits d unless the Backend closes first; it reports whether it
// waited.
func (h *hub) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-h.backend.closing:
		return false
	}
}

// backoff is the wait before the attempt after failures failures: 10ms
// doubling, at most max.
func backoff(max time.Duration, failures int) time.Duration {
	d := 10 * time.Millisecond << min(failures, 10)
	return min(d, max)
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// disconnected notes that announcements may be missed from now on, and
// fails every watch if the subscription has been down for longer than
// outageLimit, or at once when it went silent.
func (h *hub) disconnected(cause error, silent bool) {
	defer h.flushPending()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.synced = false
	h.epoch++
	if silent {
		h.failWatchersLocked(cause)
	}
	if !h.downSince.IsZero() || h.closed {
		return
	}
	h.downSince = time.Now()
	since := h.downSince
	h.outage = time.AfterFunc(h.outageLimit(), func() { h.outageLasted(since, cause) })
}

// outageLasted fails every watch if the subscription that broke at since
// is still down.
func (h *hub) outageLasted(since time.Time, cause error) {
	h.mu.Lock()
	if h.closed || !h.downSince.Equal(since) {
		h.mu.Unlock()
		return
	}
	h.backend.loops.Add(1) // before Close waits: it sets closed under h.mu first
	defer h.backend.loops.Done()
	h.failWatchersLocked(fmt.Errorf("subscription down for %v: %w", h.outageLimit(), cause))
	h.mu.Unlock()
	h.flushPending()
}

// resubscribed starts a resync: the subscription is live again (or for
// the first time), and what was published while it was not is lost.
func (h *hub) resubscribed() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.synced = false
	h.downSince = time.Time{}
	if h.outage != nil {
		h.outage.Stop()
	}
	h.epoch++
	h.resyncWanted = true
	if h.resyncing || h.closed {
		return
	}
	h.resyncing = true
	h.backend.loops.Add(1)
	go h.resync()
}

// resync re-reads every watched election and every local claim until one
// pass completes with no disconnection or confirmation in between.
func (h *hub) resync() {
	defer h.backend.loops.Done()
	failures := 0
	for {
		h.mu.Lock()
		if !h.resyncWanted || h.closed {
			h.resyncing = false
			h.mu.Unlock()
			return
		}
		h.resyncWanted = false
		epoch := h.epoch
		names := make([]string, 0, len(h.topics)+len(h.local))
		for name := range h.topics {
			names = append(names, name)
		}
		locals := make(map[string]localClaim, len(h.local))
		for name, lc := range h.local {
			locals[name] = *lc
			if h.topics[name] == nil {
				names = append(names, name)
			}
		}
		h.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), 4*h.check+time.Duration(len(names)/1000)*time.Second)
		states, err := h.backend.readMany(ctx, names)
		cancel()
		if err != nil {
			failures++
			h.mu.Lock()
			h.resyncWanted = true
			h.mu.Unlock()
			if !h.sleep(backoff(h.check, failures)) {
				h.mu.Lock()
				h.resyncing = false
				h.mu.Unlock()
				return
			}
			continue
		}
		failures = 0
		h.mu.Lock()
		for i, name := range names {
			h.offerLocked(name, states[i])
			if lc, ok := locals[name]; ok {
				h.checkLocalLocked(name, lc, states[i])
			}
		}
		if h.epoch == epoch && !h.resyncWanted {
			h.synced = true
		}
		h.mu.Unlock()
		h.flushPending()
	}
}

// dispatch applies an announcement. Payloads that are not announcements
// (someone else publishing on the channel) are ignored.
func (h *hub) dispatch(payload string) {
	var a announcement
	if _, err := recordfmt.Decode([]byte(payload), &a); err != nil {
		return
	}
	defer h.flushPending()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch a.Kind {
	case kindClaim:
		h.backend.noteFence(a.Fence)
		h.supersedeLocked(a.Name, a.Fence)
		h.offerLocked(a.Name, state{
			leader:  &election.Leader{Election: a.Name, ID: a.ID, Metadata: a.Metadata, Fence: a.Fence},
			holder:  a.Session,
			version: claimVersion(a.Fence),
		})
	case kindRelease:
		h.supersedeLocked(a.Name, a.Fence)
		h.offerLocked(a.Name, state{version: endVersion(a.Fence)})
	case kindSessionEnd:
		h.sessionGoneLocked(a.Session)
	}
}

// offerLocked makes st the state of the watched election name if it is
// newer than the one known, and hands it to the election's watchers.
func (h *hub) offerLocked(name string, st state) {
	t := h.topics[name]
	if t == nil || (t.seen && st.version <= t.st.version) {
		return
	}
	h.setHolderLocked(name, t.st.holder, st.holder, st.holderTTL)
	t.seen, t.st = true, st
	ev := st.event(name)
	for _, w := range t.watchers {
		if w.Deliver(ev, st.version) {
			h.toFlush = append(h.toFlush, w)
		}
	}
}

// join adds w to its election's topic.
func (h *hub) join(w *watcher) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errClosed
	}
	t := h.topics[w.Name]
	if t == nil {
		t = &topic{}
		h.topics[w.Name] = t
	}
	t.watchers = append(t.watchers, w)
	return nil
}

// first offers the state st read after w joined, and hands w the newest
// state known, which is at least as new.
func (h *hub) first(w *watcher, st state) {
	defer h.flushPending()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.offerLocked(w.Name, st)
	if t := h.topics[w.Name]; t != nil && t.seen {
		if w.Deliver(t.st.event(w.Name), t.st.version) {
			h.toFlush = append(h.toFlush, w)
		}
	}
}

// leave removes w from its topic, and the topic when it was the last.
func (h *hub) leave(w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[w.Name]
	if t == nil {
		return
	}
	for i, other := range t.watchers {
		if other == w {
			t.watchers = append(t.watchers[:i], t.watchers[i+1:]...)
			break
		}
	}
	if len(t.watchers) == 0 {
		h.setHolderLocked(w.Name, t.st.holder, "", 0)
		delete(h.topics, w.Name)
	}
}
