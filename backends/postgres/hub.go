package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/watchq"
)

// hub is a Backend's listening connection, LISTENing on its prefix's one
// channel, and the state of every watched election (topics). Claims and
// releases announce themselves on the channel in the statement that makes
// them (pg_notify, delivered at commit); the hub reads each announced,
// watched election again (one statement for every election announced
// meanwhile) and hands the state to its watchers. Expiry writes nothing:
// the hub keeps one timer per session that holds a watched election
// (holders.go), at that session's remaining TTL, and reports its
// elections' new states itself when it has expired.
//
// The connection is pinged after Config.ListenCheck of silence; an
// unanswered ping or any error fails every watch with an error wrapping
// [election.ErrUnavailable] (the core watches again) and the hub connects
// again with backoff, LISTENs, and checks with a NOTIFY of its own through
// the pool that notifications reach it. While it is down, Watch fails.
type hub struct {
	b      *Backend
	config *pgx.ConnConfig
	ctx    context.Context // ends at close
	cancel context.CancelFunc
	loops  sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	up      bool // listening, and the self-check passed
	topics  map[string]*topic
	dirty   map[string]struct{} // announced watched elections to read
	reading bool
	toFlush []*watcher
	holders *watchq.Holders // by session ID: sessions holding a watched election
}

// topic is one watched election: its newest state and its watchers.
type topic struct {
	watchers []*watcher
	seen     bool
	st       state
}

// errListenerDown is the cause of a Watch refused while the listening
// connection is being re-established.
var errListenerDown = errors.New("postgres: listening connection down, reconnecting")

// newHub returns a hub that has not connected yet (start does).
func newHub(b *Backend, config *pgx.ConnConfig) *hub {
	hctx, cancel := context.WithCancel(context.Background())
	h := &hub{b: b, config: config, ctx: hctx, cancel: cancel, topics: map[string]*topic{}, dirty: map[string]struct{}{}}
	h.holders = watchq.NewHolders(h.checkHolder)
	return h
}

// start connects the listening connection and starts the hub's loop.
func (h *hub) start(ctx context.Context) error {
	conn, err := h.connect(ctx)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		closeCtx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_ = conn.Close(closeCtx)
		cancel()
		return storeError("listen", "", errClosed)
	}
	h.up = true
	h.loops.Add(1)
	go h.loop(conn)
	return nil
}

// connect opens a listening connection, LISTENs, and checks that a NOTIFY
// sent through the pool reaches it within Config.SelfNotifyTimeout.
func (h *hub) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, h.config)
	if err != nil {
		return nil, storeError("listen", "", err)
	}
	fail := func(err error) (*pgx.Conn, error) {
		closeCtx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_ = conn.Close(closeCtx)
		cancel()
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+quoteChannel(h.b.names.channel)); err != nil {
		return fail(storeError("listen", "", err))
	}
	nonce := newSessionID()
	ping := fmt.Sprintf(`{"v":%d,"kind":%q,"nonce":%q}`, formatVersion, kindPing, nonce)
	if _, err := h.b.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, h.b.names.channel, ping); err != nil {
		return fail(storeError("notify", "", err))
	}
	wait, cancel := context.WithTimeout(ctx, h.b.cfg.SelfNotifyTimeout)
	defer cancel()
	for {
		n, err := conn.WaitForNotification(wait)
		if err != nil {
			if ctx.Err() != nil {
				return fail(storeError("listen", "", err))
			}
			return fail(invalid("ListenConnString (url listen_url)",
				"a NOTIFY sent through the pool did not reach the listening connection within %v: "+
					"the listening connection goes through a transaction-mode pooler such as PgBouncer, which drops notifications, "+
					"or to another server; give it a direct connection to Postgres", h.b.cfg.SelfNotifyTimeout))
		}
		if a, ok := decodeAnnouncement(n.Payload); ok && a.Kind == kindPing && a.Nonce == nonce {
			return conn, nil
		}
	}
}

// loop listens until the hub closes, reconnecting after failures.
func (h *hub) loop(conn *pgx.Conn) {
	defer h.loops.Done()
	for {
		err := h.listen(conn)
		closeCtx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_ = conn.Close(closeCtx)
		cancel()
		if h.ctx.Err() != nil {
			return
		}
		h.down(err)
		for failures := 1; ; failures++ {
			if !h.sleep(backoff(h.b.cfg.ListenCheck, failures)) {
				return
			}
			ctx, cancel := context.WithTimeout(h.ctx, 2*h.b.cfg.ListenCheck+h.b.cfg.SelfNotifyTimeout)
			c, err := h.connect(ctx)
			cancel()
			if err == nil {
				conn = c
				break
			}
		}
		h.mu.Lock()
		h.up = !h.closed
		h.mu.Unlock()
	}
}

// listen dispatches notifications from conn until it fails.
func (h *hub) listen(conn *pgx.Conn) error {
	check := h.b.cfg.ListenCheck
	for {
		ctx, cancel := context.WithTimeout(h.ctx, check)
		n, err := conn.WaitForNotification(ctx)
		timedOut := ctx.Err() != nil
		cancel()
		if h.ctx.Err() != nil {
			return errClosed
		}
		if err != nil {
			if !timedOut || conn.IsClosed() {
				return err
			}
			ping, cancel := context.WithTimeout(h.ctx, check)
			_, err := conn.Exec(ping, "SELECT 1")
			cancel()
			if err != nil {
				return fmt.Errorf("ping unanswered within %v: %w", check, err)
			}
			continue
		}
		h.dispatch(n.Payload)
	}
}

// down fails every watch: notifications may be lost from now on.
func (h *hub) down(cause error) {
	h.mu.Lock()
	h.up = false
	for _, t := range h.topics {
		for _, w := range t.watchers {
			if w.Fail(cause) {
				h.toFlush = append(h.toFlush, w)
			}
		}
	}
	h.topics = map[string]*topic{}
	h.dirty = map[string]struct{}{}
	h.holders.DropAll()
	h.mu.Unlock()
	h.flushPending()
}

// sleep waits d unless the hub closes first; it reports whether it waited.
func (h *hub) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-h.ctx.Done():
		return false
	}
}

// backoff is the wait before the attempt after failures failures: 10ms
// doubling, at most max.
func backoff(max time.Duration, failures int) time.Duration {
	return min(10*time.Millisecond<<min(failures, 10), max)
}

func (h *hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// close fails every watch and stops the hub's goroutines.
func (h *hub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	h.mu.Unlock()
	h.down(errClosed)
	h.cancel()
	h.loops.Wait()
}

// dispatch takes an announcement as a hint only: the watched election it
// names is read (one statement for every election announced meanwhile),
// and the read, never the payload, is the state watchers get. Any role
// that may connect can NOTIFY the channel: a forged release applied as it
// stood would show a false vacancy, and one with a fence above the real
// one would make the topic drop every true state after it.
func (h *hub) dispatch(payload string) {
	a, ok := decodeAnnouncement(payload)
	if !ok || a.Name == "" {
		return
	}
	defer h.flushPending()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.topics[a.Name] == nil {
		return
	}
	switch a.Kind {
	case kindRelease, kindClaim:
		h.dirty[a.Name] = struct{}{}
		if !h.reading {
			h.reading = true
			h.loops.Add(1)
			go h.readDirty()
		}
	}
}

// readDirty reads the announced elections until none is left.
func (h *hub) readDirty() {
	defer h.loops.Done()
	for failures := 0; ; {
		h.mu.Lock()
		if h.closed || len(h.dirty) == 0 {
			h.reading = false
			h.mu.Unlock()
			return
		}
		names := make([]string, 0, len(h.dirty))
		for name := range h.dirty {
			names = append(names, name)
		}
		h.dirty = map[string]struct{}{}
		h.mu.Unlock()

		ctx, cancel := context.WithTimeout(h.ctx, 4*h.b.cfg.ListenCheck)
		states, err := h.b.readMany(ctx, names)
		cancel()
		h.mu.Lock()
		if err != nil {
			failures++
			for _, name := range names {
				if h.topics[name] != nil {
					h.dirty[name] = struct{}{}
				}
			}
			h.mu.Unlock()
			if !h.sleep(backoff(h.b.cfg.ListenCheck, failures)) {
				h.mu.Lock()
				h.reading = false
				h.mu.Unlock()
				return
			}
			continue
		}
		failures = 0
		for name, st := range states {
			h.offerLocked(name, st)
		}
		h.mu.Unlock()
		h.flushPending()
	}
}

// offerLocked makes st the state of the watched election name unless an
// older one, and hands it to the election's watchers (which drop what they
// have seen).
func (h *hub) offerLocked(name string, st state) {
	t := h.topics[name]
	if t == nil || (t.seen && st.version < t.st.version) {
		return
	}
	h.setHolderLocked(name, t.st.holder, st.holder, st.expiresIn())
	t.seen, t.st = true, st
	ev := st.event()
	for _, w := range t.watchers {
		if w.Deliver(ev, st.version) {
			h.toFlush = append(h.toFlush, w)
		}
	}
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

// Watch streams the holder of name through the Backend's listening
// connection: it joins the election's topic, then reads the election, so
// no claim or release falls in between. The first event is that read, then
// one per claim and release (a slow reader gets the newest state, never an
// older one after a newer), and one when the holder's session expires:
// the Backend keeps one timer per holding session, not per election
// (holders.go), reads the elections it held when it has expired (a read
// that finds a claim waiting in line promotes it), and reports them, so
// ExpiresIn is always zero.
// A failure of the listening connection ends the watch with one event
// whose Err wraps [election.ErrUnavailable], and the channel closes; so
// does Backend.Close. The channel also closes when ctx ends. Watch itself
// returns an error wrapping [election.ErrUnavailable] when the server
// cannot be reached or the listener is reconnecting. A watch costs no
// goroutine.
func (b *Backend) Watch(ctx context.Context, name string) (<-chan election.WatchEvent, error) {
	w := newWatcher(name)
	stop, err := b.hub.watch(ctx, w)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, stop)
	return w.Out, nil
}

// Notify is [Backend.Watch] with a function in place of a channel
// ([election.Notifier]): fn gets the events Watch would send, in the same
// order, never two calls at once, and never with a lock of the Backend
// held. ctx bounds the set-up only: after stop, fn is not called again
// once a call in progress returns, and the Backend keeps nothing of the
// watch. Errors as Watch's.
func (b *Backend) Notify(ctx context.Context, name string, fn func(election.WatchEvent)) (stop func(), err error) {
	return b.hub.watch(ctx, newNotifyWatcher(name, fn))
}

// watch establishes w (it joins its election's topic, then reads the
// election) and returns the function that ends it.
func (h *hub) watch(ctx context.Context, w *watcher) (stop func(), err error) {
	if err := h.b.ready(ctx); err != nil {
		return nil, err
	}
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		return nil, storeError("watch", w.Name, errClosed)
	case !h.up:
		h.mu.Unlock()
		return nil, storeError("watch", w.Name, errListenerDown)
	}
	t := h.topics[w.Name]
	if t == nil {
		t = &topic{}
		h.topics[w.Name] = t
	}
	t.watchers = append(t.watchers, w)
	h.mu.Unlock()

	st, err := h.b.read(ctx, w.Name)
	if err != nil {
		h.leave(w)
		return nil, err
	}
	h.mu.Lock()
	h.offerLocked(w.Name, st)
	if t := h.topics[w.Name]; t != nil && t.seen {
		if w.Deliver(t.st.event(), t.st.version) {
			h.toFlush = append(h.toFlush, w)
		}
	}
	h.mu.Unlock()
	h.flushPending()
	return func() {
		h.leave(w)
		w.Close()
	}, nil
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
		delete(h.dirty, w.Name)
	}
}
