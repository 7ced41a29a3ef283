package redis

import (
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/testserver"
)

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestRegistered(t *testing.T) {
	schemes := election.Schemes()
	for _, s := range []string{"redis", "rediss"} {
		if !slices.Contains(schemes, s) {
			t.Errorf("scheme %q not registered (have %v)", s, schemes)
		}
	}
}

func TestOpenURLRejectsBadParameters(t *testing.T) {
	ctx := testContext(t, 10*time.Second)
	for raw, want := range map[string][]string{
		"redis://127.0.0.1:1/?bogus=1&also_bogus=2":                     {"bogus", "also_bogus"},
		"redis://127.0.0.1:1/?quarantine=soon&wait_replicas=x&bogus=1":  {"quarantine", "wait_replicas", "bogus"},
		"redis://127.0.0.1:1/?no_quarantine=true&quarantine=1s":         {"NoQuarantine"},
		"redis://127.0.0.1:1/?wait_replicas=1":                          {"WaitTimeout"},
		"redis://127.0.0.1:1/?prefix=a&prefix=b":                        {"prefix", "2 times"},
		"redis://127.0.0.1:1/?subscription_check=-1s&dial_timeout=1sec": {"SubscriptionCheck", "dial_timeout"},
		"redis://127.0.0.1:1/not-a-db":                                  {"database"},
		"http://127.0.0.1:1/":                                           {"scheme"},
	} {
		_, err := OpenURL(ctx, mustParse(t, raw))
		if !errors.Is(err, election.ErrInvalidArgument) {
			t.Errorf("OpenURL(%s) = %v, want ErrInvalidArgument", raw, err)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("OpenURL(%s) = %q, does not name %q", raw, err, w)
			}
		}
	}
}

func TestOpenURL(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	b, err := OpenURL(ctx, mustParse(t, "redis://"+srv.addr+"/2?prefix=app&quarantine=50ms&subscription_check=200ms&dial_timeout=2s"))
	if err != nil {
		t.Fatalf("OpenURL: %v", err)
	}
	if b.cfg.Prefix != "app" || b.cfg.Quarantine != 50*time.Millisecond || b.cfg.SubscriptionCheck != 200*time.Millisecond {
		t.Errorf("config from URL = %+v", b.cfg)
	}
	s, err := b.OpenSession(ctx, connTestTTL)
	if err != nil {
		t.Fatal(err)
	}
	claim(t, ctx, s, request("via-url", "a"))
	admin := srv.client(t)
	if err := admin.Do(ctx, "SELECT", 2).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := admin.Exists(ctx, keysFor("app").claim("via-url")).Result(); err != nil || n != 1 {
		t.Errorf("claim not stored in db 2 under prefix app: %d, %v", n, err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.client.Ping(ctx).Err(); err == nil {
		t.Errorf("the client OpenURL made is still open after Close")
	}
}

// A database index the server does not have is a configuration error,
// not an outage to retry.
func TestOpenURLDBOutOfRange(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	_, err := OpenURL(ctx, mustParse(t, "redis://"+srv.addr+"/99"))
	if !errors.Is(err, election.ErrInvalidArgument) || errors.Is(err, election.ErrUnavailable) || !strings.Contains(err.Error(), "db:") {
		t.Fatalf("OpenURL with db 99 of 16 = %v, want ErrInvalidArgument naming db", err)
	}
}

func TestOpenURLServerDown(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	port := testserver.FreePort(t) // nothing listens there
	_, err := OpenURL(ctx, mustParse(t, "redis://127.0.0.1:"+strconv.Itoa(port)+"/?dial_timeout=1s"))
	if !errors.Is(err, election.ErrUnavailable) {
		t.Fatalf("OpenURL with no server = %v, want ErrUnavailable", err)
	}
}

func TestRequirePass(t *testing.T) {
	srv := startServer(t, "--requirepass", "s3cret-pass")
	ctx := testContext(t, 30*time.Second)
	b, err := OpenURL(ctx, mustParse(t, "redis://:s3cret-pass@"+srv.addr+"/?quarantine=10ms"))
	if err != nil {
		t.Fatalf("OpenURL with the right password: %v", err)
	}
	defer b.Close()
	s, err := b.OpenSession(ctx, connTestTTL)
	if err != nil {
		t.Fatal(err)
	}
	claim(t, ctx, s, request("authed", "a"))

	for raw, native := range map[string]string{
		"redis://:wrong-pass@" + srv.addr: "WRONGPASS",
		"redis://" + srv.addr:             "NOAUTH",
	} {
		_, err := OpenURL(ctx, mustParse(t, raw))
		if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), native) || !strings.Contains(err.Error(), "credentials") {
			t.Errorf("OpenURL(%s) = %v, want ErrInvalidArgument with %s", raw, err, native)
		}
		if err != nil && strings.Contains(err.Error(), "wrong-pass") {
			t.Errorf("error quotes the password: %v", err)
		}
	}
}

// TestACLUser runs as a user with exactly the permissions the README lists.
func TestACLUser(t *testing.T) {
	srv := startServer(t,
		"--user", "default", "off",
		"--user", "elector", "on", ">acl-pass", "~{app}:*", "&{app}:*", "+@connection",
		"+eval", "+evalsha", "+get", "+set", "+exists", "+pttl", "+pexpire", "+del", "+hget", "+hset", "+sadd", "+smembers", "+time", "+info", "+publish", "+subscribe", "+unsubscribe")
	ctx := testContext(t, 30*time.Second)
	b, err := OpenURL(ctx, mustParse(t, "redis://elector:acl-pass@"+srv.addr+"/?prefix=app&quarantine=10ms"))
	if err != nil {
		t.Fatalf("OpenURL as the ACL user: %v", err)
	}
	defer b.Close()
	s, err := b.OpenSession(ctx, connTestTTL)
	if err != nil {
		t.Fatal(err)
	}
	held, _ := claimWatched(t, ctx, b, s, "acl", "a")
	if err := s.Renew(ctx, []election.Claim{held}); err != nil {
		t.Errorf("Renew as the ACL user: %v", err)
	}
	if err := s.Release(ctx, held); err != nil {
		t.Errorf("Release as the ACL user: %v", err)
	}
	// A release by token from another session, and the renewal that
	// reports it (the lost set: SADD, SMEMBERS).
	other := claim(t, ctx, s, request("acl-2", "a"))
	s2, err := b.OpenSession(ctx, connTestTTL)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Release(ctx, other); err != nil {
		t.Errorf("Release by another session as the ACL user: %v", err)
	}
	if err := s.Renew(ctx, []election.Claim{other}); !errors.Is(err, election.ErrNotOwner) {
		t.Errorf("Renew of a claim another session released, as the ACL user = %v, want ErrNotOwner", err)
	}

	if _, err := OpenURL(ctx, mustParse(t, "redis://elector:not-it@"+srv.addr)); !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("OpenURL with a wrong password = %v, want ErrInvalidArgument with WRONGPASS", err)
	}
	// A prefix outside the user's key pattern: refused by the server, a
	// credential problem rather than an outage.
	outside, err := OpenURL(ctx, mustParse(t, "redis://elector:acl-pass@"+srv.addr+"/?prefix=other"))
	if err != nil {
		t.Fatalf("OpenURL: %v", err)
	}
	defer outside.Close()
	if _, err := outside.OpenSession(ctx, connTestTTL); !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("OpenSession outside the ACL key pattern = %v, want ErrInvalidArgument with NOPERM", err)
	}
}
