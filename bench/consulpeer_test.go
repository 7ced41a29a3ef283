package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election/internal/faultproxy"
)

// consulClient returns an API client of addr with its own transport
// (api.DefaultNonPooledConfig), so that each participant has its own
// connections.
func consulClient(addr string) (*api.Client, *http.Transport, error) {
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	return c, cfg.Transport, nil
}

// apiLockLibrary is Consul's api.Lock (github.com/hashicorp/consul/api).
// Handoff: every LockOptions field at its default (SessionTTL 15s,
// lock-delay 15s, LockWaitTime 15s; retry after a refused acquire 5s,
// DefaultLockRetryTime). Crash: SessionTTL consulMinTTL and lockDelay (0
// keeps Consul's 15s default).
func apiLockLibrary(name string, crash bool, lockDelay time.Duration) library {
	return library{
		name: name,
		key:  func(election string) string { return "bench/" + election },
		join: func(ctx context.Context, st *store, election, id string, link *faultproxy.Proxy) (participant, error) {
			addr := st.addr
			if link != nil {
				addr = link.Addr()
			}
			c, transport, err := consulClient(addr)
			if err != nil {
				return nil, err
			}
			opts := api.LockOptions{Key: "bench/" + election, Value: []byte(id)}
			if crash {
				opts.SessionTTL = consulMinTTL.String()
				opts.LockDelay = lockDelay
			}
			return &consulLock{client: c, transport: transport, opts: opts, link: link, admin: st.consul}, nil
		},
	}
}

// consulLock is one process using api.Lock: its own client and the Lock of
// its current acquire (each Lock call creates, and Unlock destroys, a
// session).
type consulLock struct {
	client    *api.Client
	transport *http.Transport
	opts      api.LockOptions
	link      *faultproxy.Proxy
	admin     *api.Client

	mu   sync.Mutex
	lock *api.Lock
}

var _ crasher = (*consulLock)(nil)

// acquire blocks in Lock; ctx ending closes Lock's stop channel.
func (c *consulLock) acquire(ctx context.Context) (time.Time, error) {
	opts := c.opts
	l, err := c.client.LockOpts(&opts)
	if err != nil {
		return time.Time{}, err
	}
	stop := make(chan struct{})
	returned := make(chan struct{})
	defer close(returned)
	go func() {
		select {
		case <-ctx.Done():
			close(stop)
		case <-returned:
		}
	}()
	lost, err := l.Lock(stop)
	if err != nil {
		return time.Time{}, err
	}
	if lost == nil {
		return time.Time{}, fmt.Errorf("lock abandoned: %w", ctx.Err())
	}
	at := time.Now()
	c.mu.Lock()
	c.lock = l
	c.mu.Unlock()
	return at, nil
}

// release unlocks: releases the key, then the session is destroyed.
func (c *consulLock) release(ctx context.Context) error {
	c.mu.Lock()
	l := c.lock
	c.lock = nil
	c.mu.Unlock()
	if l == nil {
		return errors.New("release: not held")
	}
	return l.Unlock()
}

// crash cuts the link, then renews the lock's session once from the
// benchmark's direct client: api.Lock renews in the background
// (Session.RenewPeriodic, every TTL/2) at times that are not visible; this
// last renewal has a known send time, like ours.
func (c *consulLock) crash(ctx context.Context) (crashInfo, error) {
	if c.link == nil {
		return crashInfo{}, errors.New("crash: no link to cut")
	}
	pair, _, err := c.admin.KV().Get(c.opts.Key, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return crashInfo{}, err
	}
	if pair == nil || pair.Session == "" {
		return crashInfo{}, fmt.Errorf("crash: %q is not held", c.opts.Key)
	}
	if err := c.link.Cut(ctx); err != nil {
		return crashInfo{}, err
	}
	cut := time.Now()
	sent := time.Now()
	entry, _, err := c.admin.Session().Renew(pair.Session, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return crashInfo{}, fmt.Errorf("last renewal: %w", err)
	}
	if entry == nil {
		return crashInfo{}, errors.New("last renewal: session already gone")
	}
	ttl, err := time.ParseDuration(entry.TTL)
	if err != nil {
		return crashInfo{}, err
	}
	return crashInfo{cut: cut, lastRenewal: sent, ttl: ttl}, nil
}

// close stops a Lock still held (Unlock is the only way to stop its
// session renewal; after a crash the link is closed first, so nothing
// reaches the agent) and closes idle connections.
func (c *consulLock) close() {
	c.mu.Lock()
	l := c.lock
	c.lock = nil
	c.mu.Unlock()
	if l != nil {
		_ = l.Unlock()
	}
	c.transport.CloseIdleConnections()
}
