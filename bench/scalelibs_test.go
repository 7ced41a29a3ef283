package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	goredis "github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/consul"
	"github.com/electionkit/election/backends/etcd"
	"github.com/electionkit/election/backends/memory"
	electionredis "github.com/electionkit/election/backends/redis"
)

// scaleTTL is the TTL of every library in the scale benchmark: our
// default (election.DefaultTTL), given to the peers too so that their
// renewals come as often as ours (every TTL/3 for concurrency, TTL/2 for
// api.Lock's session).
const scaleTTL = election.DefaultTTL

// scaleCounters is what a population reports while it runs. Every field is
// safe for concurrent use.
type scaleCounters struct {
	// leading is the number of leaders in office: +1 when one took office
	// (ours: EventClaimed of the leaders' elector; peers: Campaign or Lock
	// returned), −1 when one lost it.
	leading atomic.Int64
	// elected is the most leaders in office at once so far, and
	// lastElected when that grew (UnixNano).
	elected, lastElected atomic.Int64
	// lost counts leaders that lost office without a release (ours:
	// EventLost; concurrency: the session ending, or an observed leader
	// not our own; api.Lock: its lost channel closing).
	lost atomic.Int64
	// takeovers counts followers that took office (ours: EventClaimed of
	// the followers' elector).
	takeovers atomic.Int64
	// stepDowns counts EventSteppingDown of ours (Stop, Resign or Close:
	// none is called while idle).
	stepDowns atomic.Int64
	// startErrs counts Start, Campaign or Lock calls that failed.
	startErrs atomic.Int64

	mu   sync.Mutex
	errs map[string]int // distinct errors seen, with counts
}

func (c *scaleCounters) addElected() {
	v := c.leading.Add(1)
	for {
		top := c.elected.Load()
		if v <= top {
			return
		}
		if c.elected.CompareAndSwap(top, v) {
			c.lastElected.Store(time.Now().UnixNano())
			return
		}
	}
}

// addLost counts k leaders that lost office without a release.
func (c *scaleCounters) addLost(k int64) {
	c.lost.Add(k)
	c.leading.Add(-k)
}

// errNoise matches the parts of an error message that name one election,
// term, session or connection, so that one kind of error is counted once.
var errNoise = regexp.MustCompile(`scale-\d{6}|fence \d+|index=\d+|flags=\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|127\.0\.0\.1:\d+`)

// noteErr records err among the distinct kinds of error seen, its text
// shortened and the names of elections, fences, sessions and ports
// replaced by "…".
func (c *scaleCounters) noteErr(err error) {
	if err == nil {
		return
	}
	msg := errNoise.ReplaceAllString(err.Error(), "…")
	if len(msg) > 160 {
		msg = msg[:160] + "…"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.errs == nil {
		c.errs = map[string]int{}
	}
	if len(c.errs) < 20 || c.errs[msg] > 0 {
		c.errs[msg]++
	}
}

func (c *scaleCounters) errors() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.errs))
	for k, v := range c.errs {
		out[k] = v
	}
	return out
}

// scalePopulation is n elections of one library in this process.
type scalePopulation interface {
	// startLeader starts the leader of election i and returns when the
	// library's start call returns.
	startLeader(ctx context.Context, i int) error
	// startFollower starts a second candidate of election i, from a second
	// client, which waits for the leader's term to end.
	startFollower(ctx context.Context, i int) error
	// close ends every election the way a process shutting down does, and
	// closes the clients.
	close(ctx context.Context) error
}

// scaleLibrary is one library on the stores it runs on.
type scaleLibrary struct {
	name string
	// followers: a second elector's candidates wait on every election.
	followers bool
	stores    []string
	open      func(ctx context.Context, kind, addr string, c *scaleCounters) (scalePopulation, error)
}

// scaleLibraries are the populations the benchmark compares, in the order
// the full run measures them.
var scaleLibraries = []scaleLibrary{
	{name: "election", stores: []string{"memory", "etcd", "redis", "consul"}, open: openOurs},
	{name: "election", followers: true, stores: []string{"memory", "etcd", "redis", "consul"}, open: openOurs},
	{name: "concurrency", stores: []string{"etcd"}, open: openConcurrency(false)},
	{name: "concurrency+observe", stores: []string{"etcd"}, open: openConcurrency(true)},
	{name: "api.Lock", stores: []string{"consul"}, open: openAPILock},
}

func scaleElectionName(i int) string { return fmt.Sprintf("scale-%06d", i) }

// oursPopulation is our library: one Elector (one backend, one session) for
// the leaders and, with followers, a second one for the followers, as two
// processes would have. No candidate has a handler.
type oursPopulation struct {
	leaders, followers *scaleElector
	// memStore is shared by both electors on the memory backend.
	memStore *memory.Store
	kind     string
	addr     string
	counters *scaleCounters
	mu       sync.Mutex
}

type scaleElector struct {
	el           *election.Elector
	closeBackend func() error
	cands        []*election.Candidate
	mu           sync.Mutex
}

func openOurs(ctx context.Context, kind, addr string, c *scaleCounters) (scalePopulation, error) {
	p := &oursPopulation{kind: kind, addr: addr, counters: c}
	if kind == "memory" {
		p.memStore = memory.NewStore()
	}
	leaders, err := p.newElector(false)
	if err != nil {
		return nil, err
	}
	p.leaders = leaders
	return p, nil
}

func (p *oursPopulation) newElector(followers bool) (*scaleElector, error) {
	var backend election.Backend
	var closeBackend func() error
	switch p.kind {
	case "memory":
		b := p.memStore.NewClient()
		backend, closeBackend = b, b.Close
	case "etcd":
		b, err := etcd.New(etcd.Config{Endpoints: []string{p.addr}})
		if err != nil {
			return nil, err
		}
		backend, closeBackend = b, b.Close
	case "redis":
		client := goredis.NewClient(&goredis.Options{Addr: p.addr, ContextTimeoutEnabled: true})
		b, err := electionredis.New(client, electionredis.Config{})
		if err != nil {
			_ = client.Close()
			return nil, err
		}
		backend = b
		closeBackend = func() error { return errors.Join(b.Close(), client.Close()) }
	case "consul":
		b, err := consul.New(consul.Config{Address: p.addr})
		if err != nil {
			return nil, err
		}
		backend, closeBackend = b, b.Close
	default:
		return nil, fmt.Errorf("no backend for %q", p.kind)
	}
	c := p.counters
	onEvent := func(ev election.Event) {
		switch ev.Kind {
		case election.EventClaimed:
			if followers {
				c.takeovers.Add(1)
			} else {
				c.addElected()
			}
		case election.EventLost:
			if followers {
				c.lost.Add(1) // a follower that took office and lost it
			} else {
				c.addLost(1)
			}
			c.noteErr(fmt.Errorf("lost (%s): %w", ev.Reason, ev.Err))
		case election.EventSteppingDown:
			c.stepDowns.Add(1)
		case election.EventClaimFailed, election.EventRenewFailed, election.EventWatchFailed:
			c.noteErr(fmt.Errorf("%s: %w", ev.Kind, ev.Err))
		}
	}
	el, err := election.New(backend, election.Config{OnEvent: onEvent})
	if err != nil {
		_ = closeBackend()
		return nil, err
	}
	return &scaleElector{el: el, closeBackend: closeBackend}, nil
}

func (e *scaleElector) start(ctx context.Context, i int, id string) error {
	cand, err := e.el.NewCandidate(election.CandidateConfig{Name: scaleElectionName(i), ID: id})
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.cands = append(e.cands, cand)
	e.mu.Unlock()
	return cand.Start(ctx)
}

// close closes the elector (which stops every candidate, releasing what it
// leads, and ends the session), then its backend.
func (e *scaleElector) close(ctx context.Context) error {
	return errors.Join(e.el.Close(ctx), e.closeBackend())
}

func (p *oursPopulation) startLeader(ctx context.Context, i int) error {
	return p.leaders.start(ctx, i, "leader")
}

func (p *oursPopulation) startFollower(ctx context.Context, i int) error {
	p.mu.Lock()
	if p.followers == nil {
		f, err := p.newElector(true)
		if err != nil {
			p.mu.Unlock()
			return err
		}
		p.followers = f
	}
	f := p.followers
	p.mu.Unlock()
	return f.start(ctx, i, "follower")
}

// close closes the followers' elector first, so that closing the leaders
// hands nothing over, then the leaders'.
func (p *oursPopulation) close(ctx context.Context) error {
	var errs []error
	if p.followers != nil {
		errs = append(errs, p.followers.close(ctx))
	}
	errs = append(errs, p.leaders.close(ctx))
	return errors.Join(errs...)
}

// concurrencyPopulation is etcd's client/v3/concurrency: one client, one
// Session (one lease, TTL scaleTTL) and an Election per election name; with
// observe, each leader also follows its election with Election.Observe, as
// a leader must to learn that another took over.
type concurrencyPopulation struct {
	client    *clientv3.Client
	sess      *concurrency.Session
	observe   bool
	counters  *scaleCounters
	cancelObs context.CancelFunc
	obsCtx    context.Context
	sessLost  chan struct{}
}

func openConcurrency(observe bool) func(ctx context.Context, kind, addr string, c *scaleCounters) (scalePopulation, error) {
	return func(ctx context.Context, kind, addr string, c *scaleCounters) (scalePopulation, error) {
		client, sess, err := concurrencySession(ctx, addr)
		if err != nil {
			return nil, err
		}
		obsCtx, cancel := context.WithCancel(context.Background())
		p := &concurrencyPopulation{client: client, sess: sess, observe: observe, counters: c, obsCtx: obsCtx, cancelObs: cancel, sessLost: make(chan struct{})}
		// The session ending takes every election with it.
		go func() {
			select {
			case <-sess.Done():
				if obsCtx.Err() == nil {
					c.addLost(c.leading.Load())
					c.noteErr(errors.New("concurrency: session ended"))
				}
			case <-obsCtx.Done():
			}
			close(p.sessLost)
		}()
		return p, nil
	}
}

func concurrencySession(ctx context.Context, addr string) (*clientv3.Client, *concurrency.Session, error) {
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, nil, err
	}
	sess, err := concurrency.NewSession(client, concurrency.WithTTL(int(scaleTTL/time.Second)), concurrency.WithContext(context.Background()))
	if err != nil {
		_ = client.Close()
		return nil, nil, err
	}
	return client, sess, nil
}

func (p *concurrencyPopulation) startLeader(ctx context.Context, i int) error {
	e := concurrency.NewElection(p.sess, "/scale/"+scaleElectionName(i)+"/")
	if err := e.Campaign(ctx, "leader"); err != nil {
		return err
	}
	p.counters.addElected()
	if p.observe {
		ch := e.Observe(p.obsCtx)
		go func() {
			for resp := range ch {
				if len(resp.Kvs) == 0 || string(resp.Kvs[0].Value) != "leader" {
					p.counters.addLost(1)
					return
				}
			}
		}()
	}
	return nil
}

// startFollower is not measured for the peers.
func (p *concurrencyPopulation) startFollower(context.Context, int) error {
	return errors.New("concurrency: no follower variant")
}

// close revokes the session's lease (Session.Close), which deletes every
// election's key at once, and closes the client.
func (p *concurrencyPopulation) close(ctx context.Context) error {
	var errs []error
	p.cancelObs()
	<-p.sessLost
	errs = append(errs, p.sess.Close(), p.client.Close())
	return errors.Join(errs...)
}

// apiLockPopulation is Consul's api.Lock: one API client (api.DefaultConfig:
// a pooled transport, as an application has) and one Lock per election,
// each with its own session (SessionTTL scaleTTL, renewed every TTL/2) and,
// while held, its own blocking query on its key (monitorLock).
type apiLockPopulation struct {
	client    *api.Client
	transport *http.Transport
	counters  *scaleCounters
	mu        sync.Mutex
	locks     []*api.Lock
	// closing is set once close begins: Unlock closes the lost channels.
	closing atomic.Bool
}

func openAPILock(ctx context.Context, kind, addr string, c *scaleCounters) (scalePopulation, error) {
	client, transport, err := pooledConsulClient(addr)
	if err != nil {
		return nil, err
	}
	return &apiLockPopulation{client: client, transport: transport, counters: c}, nil
}

func pooledConsulClient(addr string) (*api.Client, *http.Transport, error) {
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	return c, cfg.Transport, nil
}

func (p *apiLockPopulation) startLeader(ctx context.Context, i int) error {
	l, err := p.client.LockOpts(&api.LockOptions{Key: "scale/" + scaleElectionName(i), Value: []byte("leader"), SessionTTL: scaleTTL.String()})
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			close(stop)
		case <-stop:
		}
	}()
	lost, err := l.Lock(stop)
	if err != nil {
		return err
	}
	if lost == nil {
		return ctx.Err()
	}
	p.mu.Lock()
	p.locks = append(p.locks, l)
	p.mu.Unlock()
	p.counters.addElected()
	go func() {
		<-lost
		// Unlock closes the channel too: count only what happened before
		// close began.
		if !p.closing.Load() {
			p.counters.addLost(1)
		}
	}()
	return nil
}

// startFollower is not measured for the peers.
func (p *apiLockPopulation) startFollower(context.Context, int) error {
	return errors.New("api.Lock: no follower variant")
}

// close unlocks every lock (a release and the session's destruction each),
// as many at once as the leaders were started with.
func (p *apiLockPopulation) close(ctx context.Context) error {
	p.closing.Store(true)
	p.mu.Lock()
	locks := p.locks
	p.mu.Unlock()
	var failed atomic.Int64
	var first atomic.Value
	runParallel(ctx, len(locks), *scaleParallel, func(ctx context.Context, i int) {
		if err := locks[i].Unlock(); err != nil {
			if failed.Add(1) == 1 {
				first.Store(err)
			}
		}
	})
	p.transport.CloseIdleConnections()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d Unlock calls failed, the first: %w", n, len(locks), first.Load().(error))
	}
	return ctx.Err()
}

// runParallel calls fn(ctx, i) for every i in [0, n) from workers
// goroutines and returns when all calls have returned or ctx has ended
// (remaining indices are then skipped).
func runParallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(ctx, i)
			}
		}()
	}
	wg.Wait()
}
