package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	redsyncgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/electionkit/election/internal/faultproxy"
)

// Settings of the Redis lock libraries. Neither renews a lock by itself, so
// in the crash scenario the holder refreshes it every TTL/3 (our default
// RenewInterval), as a leader holding it for longer than its TTL must.
const (
	// redsyncCrashTTL and redislockCrashTTL are the lock TTLs of the crash
	// scenario; the handoff scenario keeps redsync's default expiry (8s).
	redisCrashTTL = time.Second
	// redislockHandoffTTL is redislock's TTL in the handoff scenario: it has
	// no default (the TTL is an argument); 8s is redsync's default expiry.
	redislockHandoffTTL = 8 * time.Second
	// redislockRetry is the retry interval of redislock's documented retry
	// example (ExampleClient_Obtain_retry: LinearBackoff(100ms), limited to
	// 3 retries there). Its default is no retry at all, which cannot wait
	// for a holder; the limit of 3 is dropped so that a waiter keeps trying
	// until the holder goes, bounded by the context's deadline.
	redislockRetry = 100 * time.Millisecond
)

func init() {
	// A crashed holder's client keeps dialing its closed fault proxy and
	// go-redis logs every failed dial; the scenarios see every error that
	// matters through the calls' results.
	logging.Disable()
}

// redisRefresher is the refresh loop a leader runs around a Redis lock
// library: refresh every ttl/3 until stopped.
type redisRefresher struct {
	refresh func(ctx context.Context) error
	ttl     time.Duration
	stop    chan struct{}
	done    chan struct{}
}

func startRefresher(ttl time.Duration, refresh func(ctx context.Context) error) *redisRefresher {
	r := &redisRefresher{refresh: refresh, ttl: ttl, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		ticker := time.NewTicker(ttl / 3)
		defer ticker.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-ticker.C:
				ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
				_ = r.refresh(ctx)
				cancel()
			}
		}
	}()
	return r
}

// last stops the loop and makes one last refresh, returning its send time:
// the crash then follows a refresh at once, as ours follows a renewal.
func (r *redisRefresher) last(ctx context.Context) (time.Time, error) {
	r.halt()
	sent := time.Now()
	if err := r.refresh(ctx); err != nil {
		return time.Time{}, fmt.Errorf("last refresh: %w", err)
	}
	return sent, nil
}

func (r *redisRefresher) halt() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

// redsyncLibrary is go-redsync/redsync v4 with its goredis v9 pool on one
// server. crash selects the crash configuration: expiry redisCrashTTL and a
// refresher; otherwise every option is the default (expiry 8s, 32 tries,
// a random 50–250ms delay between tries, drift factor 0.01, timeout factor
// 0.05).
func redsyncLibrary(crash bool) library {
	return library{
		name: "redsync",
		join: func(ctx context.Context, st *store, name, id string, link *faultproxy.Proxy) (participant, error) {
			p := &redisPeer{client: redisClient(st, link), link: link, key: "bench:" + name}
			rs := redsync.New(redsyncgoredis.NewPool(p.client))
			var opts []redsync.Option
			if crash {
				opts = append(opts, redsync.WithExpiry(redisCrashTTL))
				p.ttl = redisCrashTTL
			}
			p.lock = func(ctx context.Context) (func(context.Context) error, func(context.Context) error, error) {
				m := rs.NewMutex(p.key, opts...)
				if err := m.LockContext(ctx); err != nil {
					return nil, nil, err
				}
				unlock := func(ctx context.Context) error {
					ok, err := m.UnlockContext(ctx)
					if err == nil && !ok {
						err = errors.New("redsync: unlock failed")
					}
					return err
				}
				extend := func(ctx context.Context) error {
					ok, err := m.ExtendContext(ctx)
					if err == nil && !ok {
						err = errors.New("redsync: extend failed")
					}
					return err
				}
				return unlock, extend, nil
			}
			return p, nil
		},
	}
}

// redislockLibrary is bsm/redislock with the retry strategy described at
// redislockRetry. crash selects TTL redisCrashTTL and a refresher.
func redislockLibrary(crash bool) library {
	return library{
		name: "redislock",
		join: func(ctx context.Context, st *store, name, id string, link *faultproxy.Proxy) (participant, error) {
			p := &redisPeer{client: redisClient(st, link), link: link, key: "bench:" + name}
			locker := redislock.New(p.client)
			ttl := redislockHandoffTTL
			if crash {
				ttl = redisCrashTTL
				p.ttl = ttl
			}
			p.lock = func(ctx context.Context) (func(context.Context) error, func(context.Context) error, error) {
				l, err := locker.Obtain(ctx, p.key, ttl, &redislock.Options{RetryStrategy: redislock.LinearBackoff(redislockRetry)})
				if err != nil {
					return nil, nil, err
				}
				return l.Release, func(ctx context.Context) error { return l.Refresh(ctx, ttl, nil) }, nil
			}
			return p, nil
		},
	}
}

func redisClient(st *store, link *faultproxy.Proxy) *goredis.Client {
	addr := st.addr
	if link != nil {
		addr = link.Addr()
	}
	return goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true})
}

// redisPeer is one process using a Redis lock library: its own client and
// the lock of its current acquire.
type redisPeer struct {
	client *goredis.Client
	link   *faultproxy.Proxy
	key    string
	// ttl is the lock TTL in the crash configuration (a refresher runs
	// while the lock is held); 0 in the handoff configuration.
	ttl time.Duration
	// lock acquires once, as the library does with its retries, and
	// returns the unlock and refresh functions of the lock.
	lock func(ctx context.Context) (unlock, refresh func(context.Context) error, err error)

	mu        sync.Mutex
	unlock    func(context.Context) error
	refresher *redisRefresher
}

var _ crasher = (*redisPeer)(nil)

// acquire calls the library's acquire until it succeeds: redsync gives up
// after its 32 tries (about 5s), redislock at the context's deadline, and a
// waiting leader calls again.
func (p *redisPeer) acquire(ctx context.Context) (time.Time, error) {
	for {
		unlock, refresh, err := p.lock(ctx)
		if err == nil {
			at := time.Now()
			p.mu.Lock()
			p.unlock = unlock
			if p.ttl > 0 {
				p.refresher = startRefresher(p.ttl, refresh)
			}
			p.mu.Unlock()
			return at, nil
		}
		if ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		}
		if !lockBusy(err) {
			return time.Time{}, err
		}
	}
}

// lockBusy reports whether err says only that the lock is held by someone
// else (after the library's own retries).
func lockBusy(err error) bool {
	var taken *redsync.ErrTaken
	return errors.Is(err, redsync.ErrFailed) || errors.As(err, &taken) || errors.Is(err, redislock.ErrNotObtained)
}

func (p *redisPeer) release(ctx context.Context) error {
	p.mu.Lock()
	unlock, r := p.unlock, p.refresher
	p.unlock, p.refresher = nil, nil
	p.mu.Unlock()
	if r != nil {
		r.halt()
	}
	if unlock == nil {
		return errors.New("release: not held")
	}
	return unlock(ctx)
}

// crash refreshes the lock one last time, then cuts the link.
func (p *redisPeer) crash(ctx context.Context) (crashInfo, error) {
	p.mu.Lock()
	r := p.refresher
	p.refresher, p.unlock = nil, nil
	p.mu.Unlock()
	if r == nil || p.link == nil {
		return crashInfo{}, errors.New("crash: not holding with a refresher behind a link")
	}
	sent, err := r.last(ctx)
	if err != nil {
		return crashInfo{}, err
	}
	if err := p.link.Cut(ctx); err != nil {
		return crashInfo{}, err
	}
	return crashInfo{cut: time.Now(), lastRenewal: sent, ttl: p.ttl}, nil
}

func (p *redisPeer) close() {
	p.mu.Lock()
	r := p.refresher
	p.refresher = nil
	p.mu.Unlock()
	if r != nil {
		r.halt()
	}
	_ = p.client.Close()
}
