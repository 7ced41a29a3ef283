package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/conformance"
	"github.com/electionkit/election/internal/faultproxy"
)

// harness gives one conformance subtest its own key prefix on a shared
// redis-server (subtests run one at a time), and every backend its own
// faultproxy link. Close undoes the store faults the subtest left.
type harness struct {
	srv    *server
	prefix string

	mu      sync.Mutex
	proxies map[*Backend]*faultproxy.Proxy
}

var harnessCount atomic.Int64

func (h *harness) NewBackend(ctx context.Context) (election.Backend, conformance.Link, error) {
	proxy, err := faultproxy.New(h.srv.addr)
	if err != nil {
		return nil, nil, err
	}
	q := url.Values{"prefix": {h.prefix}, "dial_timeout": {"1s"}}
	b, err := OpenURL(ctx, &url.URL{Scheme: "redis", Host: proxy.Addr(), Path: "/", RawQuery: q.Encode()})
	if err != nil {
		_ = proxy.Close()
		return nil, nil, err
	}
	h.mu.Lock()
	h.proxies[b] = proxy
	h.mu.Unlock()
	return b, proxy, nil
}

func (h *harness) CloseBackend(eb election.Backend) error {
	b, ok := eb.(*Backend)
	if !ok {
		return fmt.Errorf("CloseBackend: %T is not a *redis.Backend", eb)
	}
	h.mu.Lock()
	proxy := h.proxies[b]
	delete(h.proxies, b)
	h.mu.Unlock()
	err := b.Close()
	if proxy != nil {
		err = errors.Join(err, proxy.Close())
	}
	return err
}

func (h *harness) Store() conformance.Store { return h.srv.proc }

func (h *harness) Timing() conformance.Timing {
	// Redis expires keys on time and the core claims at the PTTL it was
	// told, so the lag is scheduling only; generous for -race on 2 cores.
	return conformance.Timing{TTL: time.Second, ExpiryLag: 250 * time.Millisecond}
}

func (h *harness) InvalidNames() []string { return nil } // any name the core accepts is stored

func (h *harness) Close() error {
	h.mu.Lock()
	var backends []*Backend
	for b := range h.proxies {
		backends = append(backends, b)
	}
	h.mu.Unlock()
	var errs []error
	for _, b := range backends {
		errs = append(errs, h.CloseBackend(b))
	}
	// Leave the shared server running for the next subtest.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = h.srv.proc.Resume(ctx) // fails only when stopped
	if h.srv.proc.PID() == 0 {
		errs = append(errs, h.srv.proc.Start(ctx))
	}
	return errors.Join(errs...)
}

func TestConformance(t *testing.T) {
	srv := startServer(t)
	conformance.Run(t, func(ctx context.Context, _ testing.TB) (conformance.Harness, error) {
		return &harness{
			srv:     srv,
			prefix:  fmt.Sprintf("conformance-%d", harnessCount.Add(1)),
			proxies: map[*Backend]*faultproxy.Proxy{},
		}, nil
	})
}
