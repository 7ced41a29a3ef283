package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/consul"
	"github.com/electionkit/election/backends/etcd"
	"github.com/electionkit/election/backends/postgres"
	electionredis "github.com/electionkit/election/backends/redis"
	"github.com/electionkit/election/internal/faultproxy"
)

// ourLibrary is this module's Candidate on st's backend. ttl 0 keeps the
// default (election.DefaultTTL, 10s); every other setting is the default.
func ourLibrary(kind string, ttl time.Duration) library {
	lib := library{
		name: "election",
		join: func(ctx context.Context, st *store, name, id string, link *faultproxy.Proxy) (participant, error) {
			return joinOurs(st, name, id, link, ttl)
		},
	}
	if kind == "consul" {
		// New does no I/O: this backend only computes key names.
		keys, err := consul.New(consul.Config{Address: "127.0.0.1:1", MinTTL: consulMinTTL})
		if err != nil {
			panic(err) // a constant, valid configuration
		}
		lib.key = keys.Key
	}
	return lib
}

// ours is one process of our library: an Elector on its own backend (its
// own connections), and the Candidate of its current acquire.
type ours struct {
	el           *election.Elector
	closeBackend func() error
	election, id string
	link         *faultproxy.Proxy
	// renewed receives the elector's successful renewals (latest only).
	renewed chan election.Event

	mu       sync.Mutex
	cand     *election.Candidate
	term     *termTimes
	crashed  bool
	released time.Time     // Time of the last EventReleased
	releases chan struct{} // a signal per EventReleased (OnEvent runs after Stop may return)
}

// termTimes records a handler's term: its claim's send time (Term.Since),
// when the handler started and when its context ended.
type termTimes struct {
	mu                sync.Mutex
	since, start, end time.Time
}

var (
	_ crasher       = (*ours)(nil)
	_ stepDowner    = (*ours)(nil)
	_ handoffPhaser = (*ours)(nil)
)

func joinOurs(st *store, name, id string, link *faultproxy.Proxy, ttl time.Duration) (*ours, error) {
	addr := st.addr
	if link != nil {
		addr = link.Addr()
	}
	var backend election.Backend
	var closeBackend func() error
	switch st.kind {
	case "etcd":
		b, err := etcd.New(etcd.Config{Endpoints: []string{addr}})
		if err != nil {
			return nil, err
		}
		backend, closeBackend = b, b.Close
	case "redis":
		client := goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true})
		b, err := electionredis.New(client, electionredis.Config{})
		if err != nil {
			_ = client.Close()
			return nil, err
		}
		backend = b
		closeBackend = func() error { return errors.Join(b.Close(), client.Close()) }
	case "consul":
		b, err := consul.New(consul.Config{Address: addr, MinTTL: consulMinTTL})
		if err != nil {
			return nil, err
		}
		backend, closeBackend = b, b.Close
	case "postgres":
		b, err := postgres.Open(context.Background(), postgresURL(st, link), postgres.Config{})
		if err != nil {
			return nil, err
		}
		backend, closeBackend = b, b.Close
	default:
		return nil, fmt.Errorf("no backend for %q", st.kind)
	}
	o := &ours{closeBackend: closeBackend, election: name, id: id, link: link, renewed: make(chan election.Event, 1), releases: make(chan struct{}, 1)}
	el, err := election.New(backend, election.Config{TTL: ttl, OnEvent: o.onEvent})
	if err != nil {
		_ = closeBackend()
		return nil, err
	}
	o.el = el
	return o, nil
}

// onEvent keeps the latest successful renewal and release time. It never
// blocks.
func (o *ours) onEvent(ev election.Event) {
	if ev.Kind == election.EventReleased {
		o.mu.Lock()
		o.released = ev.Time
		o.mu.Unlock()
		select {
		case o.releases <- struct{}{}:
		default:
		}
		return
	}
	if ev.Kind != election.EventRenewed || ev.Err != nil {
		return
	}
	for {
		select {
		case o.renewed <- ev:
			return
		default:
		}
		select {
		case <-o.renewed:
		default:
		}
	}
}

// acquire starts a new Candidate and waits for its handler to start.
func (o *ours) acquire(ctx context.Context) (time.Time, error) {
	tt := &termTimes{}
	started := make(chan time.Time, 1)
	handler := func(ctx context.Context, t election.Term) {
		at := time.Now()
		tt.mu.Lock()
		if tt.start.IsZero() {
			tt.since, tt.start = t.Since, at
		}
		tt.mu.Unlock()
		select {
		case started <- at:
		default:
		}
		<-ctx.Done()
		end := time.Now()
		tt.mu.Lock()
		tt.end = end
		tt.mu.Unlock()
	}
	c, err := o.el.NewCandidate(election.CandidateConfig{Name: o.election, ID: o.id, Handlers: []election.Handler{handler}})
	if err != nil {
		return time.Time{}, err
	}
	o.mu.Lock()
	o.cand, o.term = c, tt
	o.mu.Unlock()
	if err := c.Start(ctx); err != nil {
		return time.Time{}, err
	}
	select {
	case at := <-started:
		return at, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// release stops the current Candidate: it cancels the handler, waits for
// it and releases the election.
func (o *ours) release(ctx context.Context) error {
	o.mu.Lock()
	c := o.cand
	o.mu.Unlock()
	if c == nil {
		return errors.New("release: no candidate")
	}
	return c.Stop(ctx)
}

func (o *ours) steppedDown() (time.Time, bool) {
	o.mu.Lock()
	tt := o.term
	o.mu.Unlock()
	if tt == nil {
		return time.Time{}, false
	}
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.end, !tt.end.IsZero()
}

func (o *ours) lastReleased() time.Time {
	// Config.OnEvent is called from the elector's event queue, which may
	// deliver EventReleased after Stop returned: wait for it.
	select {
	case <-o.releases:
	case <-time.After(10 * time.Second):
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.released
}

func (o *ours) lastClaimSent() time.Time {
	o.mu.Lock()
	tt := o.term
	o.mu.Unlock()
	if tt == nil {
		return time.Time{}
	}
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.since
}

// crash waits for the elector's next successful renewal and cuts the link
// right after it, so that no renewal is in flight: the store then holds the
// claim until the renewal's send time (Event.Time) + the granted TTL.
func (o *ours) crash(ctx context.Context) (crashInfo, error) {
	if o.link == nil {
		return crashInfo{}, errors.New("crash: no link to cut")
	}
	select {
	case <-o.renewed: // an older renewal
	default:
	}
	var ev election.Event
	select {
	case ev = <-o.renewed:
	case <-ctx.Done():
		return crashInfo{}, ctx.Err()
	}
	if err := o.link.Cut(ctx); err != nil {
		return crashInfo{}, err
	}
	cut := time.Now()
	o.mu.Lock()
	o.crashed = true
	o.mu.Unlock()
	return crashInfo{cut: cut, lastRenewal: ev.Time, ttl: ev.TTL}, nil
}

// close closes the elector, which stops the candidate (releasing only if
// the store can still be reached) and ends the session, then the backend.
// After a crash the store is unreachable: the etcd client would retry the
// lease revoke until the deadline, so that one is short.
func (o *ours) close() {
	timeout := cleanupTimeout
	o.mu.Lock()
	if o.crashed {
		timeout = time.Second
	}
	o.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = o.el.Close(ctx)
	_ = o.closeBackend()
}
