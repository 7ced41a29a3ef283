package redis

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
)

func TestPrefixIsolation(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	short := newBackend(t, srv.client(t), Config{Prefix: "a", Quarantine: 50 * time.Millisecond})
	long := newBackend(t, srv.client(t), Config{Prefix: "a:b", Quarantine: 50 * time.Millisecond})
	ttl := 5 * time.Second

	// Naively joined, prefix "a" + name "b:x" and prefix "a:b" + name "x"
	// are both "a:b:x".
	watch, err := long.Watch(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	next(t, watch)
	held := claim(t, ctx, openSession(t, ctx, short, ttl), request("b:x", "short"))
	other := claim(t, ctx, openSession(t, ctx, long, ttl), request("x", "long"))
	if l, err := short.Leader(ctx, "b:x"); err != nil || l.ID != "short" || l.Fence != held.Fence {
		t.Errorf("prefix a, name b:x: Leader = %+v, %v", l, err)
	}
	if l, err := long.Leader(ctx, "x"); err != nil || l.ID != "long" || l.Fence != other.Fence {
		t.Errorf("prefix a:b, name x: Leader = %+v, %v", l, err)
	}
	// The watcher of a:b/x saw only its own election's claim.
	if ev := next(t, watch); ev.Leader == nil || ev.Leader.ID != "long" {
		t.Errorf("watcher of prefix a:b name x got %+v, want only its own claim", ev)
	}
	// The default prefix sees neither.
	def := newBackend(t, srv.client(t), Config{})
	for _, name := range []string{"b:x", "x", "a:b:x"} {
		if _, err := def.Leader(ctx, name); !errors.Is(err, election.ErrNoLeader) {
			t.Errorf("default prefix, name %q: Leader = %v, want ErrNoLeader", name, err)
		}
	}
	// Every key lives under its prefix's one hash tag.
	keys, err := srv.client(t).Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "{a}:") && !strings.HasPrefix(k, "{a:b}:") {
			t.Errorf("unexpected key %q", k)
		}
	}
}

func TestBadInput(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	b := newBackend(t, srv.client(t), Config{Quarantine: 50 * time.Millisecond})
	for _, ttl := range []time.Duration{0, -time.Second, 999 * time.Microsecond, 1500 * time.Microsecond, MaxTTL + time.Millisecond} {
		if _, err := b.OpenSession(ctx, ttl); !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "ttl") {
			t.Errorf("OpenSession(%v) = %v, want ErrInvalidArgument naming ttl", ttl, err)
		}
	}
	// Names with every separator and escape byte, and non-ASCII, are stored
	// and read back verbatim.
	s := openSession(t, ctx, b, 5*time.Second)
	for _, name := range []string{"{tag}", "a:b:c", "100%", "}{", "élection ☃", "x%3Ay"} {
		req := request(name, "id:"+name)
		req.Metadata = map[string]string{"k{": "v}", "": "empty key"}
		c := claim(t, ctx, s, req)
		l, err := b.Leader(ctx, name)
		if err != nil || l.Election != name || l.ID != req.ID || l.Fence != c.Fence || l.Metadata["k{"] != "v}" || l.Metadata[""] != "empty key" {
			t.Errorf("name %q: Leader = %+v, %v", name, l, err)
		}
	}
	// A value under our key that is not ours is reported, not misread.
	if err := srv.client(t).Set(ctx, keysFor(DefaultPrefix).claim("foreign"), "not json", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Leader(ctx, "foreign"); err == nil || strings.Contains(err.Error(), "not json") {
		t.Errorf("Leader over a foreign value = %v, want an error that does not quote the value", err)
	}
}
