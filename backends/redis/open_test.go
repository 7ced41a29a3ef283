package redis

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/storedown"
	"github.com/electionkit/election/internal/testserver"
)

// The eager OpenURL gives up after dial_timeout, not after go-redis's own
// retry schedule (at least 1.6s of backoff sleeps alone for a refused
// connection, 3s read timeouts for a server that does not answer), with
// ErrUnavailable naming the address.
func TestOpenURLHonoursDialTimeout(t *testing.T) {
	const dialTimeout = 200 * time.Millisecond
	// The margin is far above the time a loaded machine needs to notice a
	// context deadline, and still below what go-redis alone would take.
	const bound = dialTimeout + 1300*time.Millisecond
	silent := storedown.Listen(t)
	for _, tc := range []struct{ what, addr string }{
		{"refused", "127.0.0.1:" + strconv.Itoa(testserver.FreePort(t))},
		{"silent", silent.Addr()},
	} {
		t.Run(tc.what, func(t *testing.T) {
			ctx := testContext(t, 30*time.Second)
			start := time.Now()
			_, err := OpenURL(ctx, mustParse(t, "redis://"+tc.addr+"/?dial_timeout="+dialTimeout.String()))
			took := time.Since(start)
			if !errors.Is(err, election.ErrUnavailable) || !strings.Contains(err.Error(), tc.addr) {
				t.Fatalf("OpenURL(%s) = %v, want ErrUnavailable naming %s", tc.what, err, tc.addr)
			}
			if !strings.Contains(err.Error(), "dial_timeout 200ms") {
				t.Errorf("OpenURL(%s) = %v, does not say that dial_timeout ran out", tc.what, err)
			}
			if took > bound {
				t.Errorf("OpenURL(%s) failed after %v, want within dial_timeout %v (+%v margin)", tc.what, took, dialTimeout, bound-dialTimeout)
			}
			if tc.what == "silent" && took < dialTimeout {
				t.Errorf("OpenURL(silent) gave up after %v, before dial_timeout %v", took, dialTimeout)
			}
			t.Logf("%s: failed after %v: %v", tc.what, took.Round(time.Millisecond), err)
		})
	}
	if silent.Accepted() == 0 {
		t.Errorf("the silent server accepted no connection: the eager check never dialled it")
	}
}

// dial_timeout=0 or less, which go-redis reads as "no timeout" and then
// fails every dial at once, is refused with a reason.
func TestOpenURLNoDialTimeout(t *testing.T) {
	ctx := testContext(t, 10*time.Second)
	for _, v := range []string{"0", "0s", "-1s"} {
		_, err := OpenURL(ctx, mustParse(t, "redis://127.0.0.1:1/?lazy=true&dial_timeout="+v))
		if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "url dial_timeout: 0 or less") {
			t.Errorf("OpenURL with dial_timeout=%s: %v, want ErrInvalidArgument naming dial_timeout", v, err)
		}
	}
}

// lazy=true: OpenURL does no I/O; a candidate on a server that is down
// campaigns (Start does not fail) and is elected once the server starts.
func TestOpenURLLazy(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	silent := storedown.Listen(t)
	b, err := OpenURL(ctx, mustParse(t, "redis://"+silent.Addr()+"/?lazy=true&dial_timeout=1m"))
	if err != nil {
		t.Fatalf("OpenURL lazy: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := silent.Accepted(); n != 0 {
		t.Fatalf("OpenURL with lazy=true connected %d times, want none", n)
	}
	if _, err := OpenURL(ctx, mustParse(t, "redis://127.0.0.1:1/?lazy=maybe")); !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "lazy") {
		t.Errorf("lazy=maybe: %v, want ErrInvalidArgument naming lazy", err)
	}

	srv := startServer(t)
	if err := srv.proc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	backend, cfg, err := election.Open(ctx, "redis://"+srv.addr+"/?lazy=true&no_quarantine=true&ttl=2s")
	if err != nil {
		t.Fatalf("election.Open lazy with the server down: %v", err)
	}
	defer election.CloseBackend(backend)
	storedown.ElectedOnceUp(t, ctx, backend, cfg, func() error { return srv.proc.Start(ctx) })
}

// An option go-redis rejects is reported as every backend reports an
// unknown parameter: the known ones, and the nearest.
func TestOpenURLSuggestsOption(t *testing.T) {
	ctx := testContext(t, 10*time.Second)
	for raw, want := range map[string]string{
		"redis://127.0.0.1:1/?lazzy=true":           "lazzy: did you mean lazy?",
		"redis://127.0.0.1:1/?dial_timout=1s":       "dial_timout: did you mean dial_timeout?",
		"redis://127.0.0.1:1/?prefix=a&pool_sise=3": "pool_sise: did you mean pool_size?",
	} {
		_, err := OpenURL(ctx, mustParse(t, raw))
		if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "known: client_name") {
			t.Errorf("OpenURL(%s) = %v, want ErrInvalidArgument listing the known options and %q", raw, err, want)
		}
	}
	// Every name the explanation lists is one go-redis reads.
	for _, name := range goRedisParams {
		if _, err := goredis.ParseURL("rediss://127.0.0.1:1/?" + name + "=1"); err != nil && strings.Contains(err.Error(), "unexpected option") {
			t.Errorf("go-redis does not know %s, which goRedisParams lists: %v", name, err)
		}
	}
}
