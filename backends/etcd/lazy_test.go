package etcd_test

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
	"github.com/electionkit/election/internal/storedown"
	"github.com/electionkit/election/internal/testserver"
)

// OpenURL gives up after dial_timeout, whether the port refuses
// connections or accepts them and never answers, with ErrUnavailable
// naming the address.
func TestOpenURLHonoursDialTimeout(t *testing.T) {
	const dialTimeout = 200 * time.Millisecond
	const bound = dialTimeout + 1300*time.Millisecond // a loaded machine's slack
	silent := storedown.Listen(t)
	for _, tc := range []struct{ what, addr string }{
		{"refused", net.JoinHostPort("127.0.0.1", strconv.Itoa(testserver.FreePort(t)))},
		{"silent", silent.Addr()},
	} {
		t.Run(tc.what, func(t *testing.T) {
			start := time.Now()
			_, err := etcd.OpenURL(testCtx(t), &url.URL{Scheme: "etcd", Host: tc.addr, RawQuery: "dial_timeout=" + dialTimeout.String()})
			took := time.Since(start)
			if !errors.Is(err, election.ErrUnavailable) || !strings.Contains(err.Error(), tc.addr) {
				t.Fatalf("OpenURL(%s) = %v, want ErrUnavailable naming %s", tc.what, err, tc.addr)
			}
			if took > bound || took < dialTimeout {
				t.Errorf("OpenURL(%s) failed after %v, want after dial_timeout %v and within %v", tc.what, took, dialTimeout, bound)
			}
			t.Logf("%s: failed after %v: %v", tc.what, took.Round(time.Millisecond), err)
		})
	}
}

// lazy=true: OpenURL makes no connection; a candidate on a stopped etcd
// campaigns (Start does not fail) and is elected once etcd starts.
func TestOpenURLLazy(t *testing.T) {
	ctx := testCtx(t)
	silent := storedown.Listen(t)
	b, err := etcd.OpenURL(ctx, &url.URL{Scheme: "etcd", Host: silent.Addr(), RawQuery: "lazy=true&dial_timeout=1m"})
	if err != nil {
		t.Fatalf("OpenURL lazy: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := silent.Accepted(); n != 0 {
		t.Fatalf("OpenURL with lazy=true connected %d times, want none", n)
	}
	_, err = etcd.New(etcd.Config{Endpoints: []string{"127.0.0.1:1"}, Lazy: true, Username: "u", Password: "p"})
	if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "Lazy") {
		t.Errorf("Lazy with a username: %v, want ErrInvalidArgument naming Lazy", err)
	}

	srv := startEtcd(t, etcdOptions{})
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	backend, cfg, err := election.Open(ctx, "etcd://"+srv.addr+"/lazy?lazy=true&ttl=2s&dial_timeout=1s")
	if err != nil {
		t.Fatalf("election.Open lazy with etcd down: %v", err)
	}
	defer election.CloseBackend(backend)
	storedown.ElectedOnceUp(t, ctx, backend, cfg, func() error { return srv.Start(ctx) })
}
