package memory_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// TestOpenURLRejected: a memory:// URL takes no parameter but expiry and lazy, no path, user info
// or port; every such problem is named in one error, which never shows the
// password.
func TestOpenURLRejected(t *testing.T) {
	const invalid = "memory: election: invalid argument: url: "
	for raw, want := range map[string]string{
		"memory://x?pool=3":  invalid + "unknown query parameter: pool (known: expiry, lazy; and for the elector: ttl, renew_interval, drift_margin, renew_timeout, op_timeout)",
		"memory://x?b=1&a=2": invalid + "unknown query parameters: a, b (known: expiry, lazy; and for the elector: ttl, renew_interval, drift_margin, renew_timeout, op_timeout)",
		"memory://x:80":      invalid + "memory://x:80: a path, user info or port is not supported (want memory://NAME)",
		"memory://x?lazy=no": "memory: election: invalid argument: url lazy: \"no\" is not a boolean (true or false)",
		"memory://u:secret@x/path?ttl_ms=5&z": invalid + "unknown query parameters: ttl_ms, z (known: expiry, lazy; and for the elector: ttl, renew_interval, drift_margin, renew_timeout, op_timeout)\n" +
			invalid + "memory://u:xxxxx@x/path?ttl_ms=5&z: a path, user info or port is not supported (want memory://NAME)",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		b, err := memory.OpenURL(t.Context(), u)
		if err == nil {
			_ = election.CloseBackend(b)
			t.Errorf("OpenURL(%s) succeeded", raw)
			continue
		}
		if !errors.Is(err, election.ErrInvalidArgument) || err.Error() != want {
			t.Errorf("OpenURL(%s) =\n%v\nwant ErrInvalidArgument:\n%s", raw, err, want)
		}
	}
}

// TestOpenURLNamed: memory://NAME reaches one store from every client, and
// memory:// a private one.
func TestOpenURLNamed(t *testing.T) {
	open := func(raw string) election.Backend {
		t.Helper()
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		b, err := memory.OpenURL(t.Context(), u)
		if err != nil {
			t.Fatalf("OpenURL(%s): %v", raw, err)
		}
		t.Cleanup(func() { _ = election.CloseBackend(b) })
		return b
	}
	claim := func(b election.Backend, id string) error {
		t.Helper()
		s, err := b.OpenSession(t.Context(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		_, err = s.Claim(t.Context(), election.ClaimRequest{Name: "shared", Token: "token-" + id, ID: id})
		return err
	}
	if err := claim(open("memory://url-named"), "a"); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if err := claim(open("memory://url-named/"), "b"); !errors.Is(err, election.ErrTaken) {
		t.Errorf("claim through a second client of the same name = %v, want ErrTaken", err)
	}
	if err := claim(open("memory://"), "c"); err != nil {
		t.Errorf("claim in a private store = %v, want success", err)
	}
	// lazy, accepted so that URLs carry over from the other backends,
	// changes nothing: the same named store.
	if err := claim(open("memory://url-named?lazy=true"), "d"); !errors.Is(err, election.ErrTaken) {
		t.Errorf("claim through memory://url-named?lazy=true = %v, want ErrTaken", err)
	}
}

func openURL(t *testing.T, raw string) (*memory.Client, error) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := memory.OpenURL(t.Context(), u)
	if err != nil {
		return nil, err
	}
	return b.(*memory.Client), nil
}

func TestURLChoosesExpiry(t *testing.T) {
	for raw, want := range map[string]memory.Expiry{
		"memory://":                  memory.EtcdExpiry,
		"memory://?expiry=etcd":      memory.EtcdExpiry,
		"memory://?expiry=redis":     memory.RedisExpiry,
		"memory://?expiry=consul":    memory.ConsulExpiry,
		"memory://url-default-store": memory.EtcdExpiry,
	} {
		c, err := openURL(t, raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if got := c.Store().Expiry(); got != want {
			t.Errorf("%s: expiry %v, want %v", raw, got, want)
		}
	}
}

func TestURLNamedStoreKeepsItsExpiry(t *testing.T) {
	a, err := openURL(t, "memory://url-named-redis?expiry=redis")
	if err != nil {
		t.Fatal(err)
	}
	b, err := openURL(t, "memory://url-named-redis?expiry=redis")
	if err != nil {
		t.Fatal(err)
	}
	if a.Store() != b.Store() {
		t.Fatalf("two opens of one name reached two stores")
	}
	for _, raw := range []string{"memory://url-named-redis", "memory://url-named-redis?expiry=consul"} {
		_, err := openURL(t, raw)
		if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "exists with expiry=redis") {
			t.Errorf("%s after the store was made with expiry=redis: %v, want ErrInvalidArgument naming the mode", raw, err)
		}
	}
}

func TestURLReportsEveryProblem(t *testing.T) {
	for raw, wants := range map[string][]string{
		"memory://?expiry=zookeeper":             {`"zookeeper" is not etcd, redis or consul`},
		"memory://?expiry=etcd&expiry=redis":     {"expiry: given 2 times"},
		"memory://?pool=3&expiry=nope&size=1":    {"pool, size", `"nope" is not`},
		"memory://x:80?bogus=1":                  {"path, user info or port", "parameter: bogus"},
		"memory://u:secret@x?expiry=redis":       {"path, user info or port"},
		"memory://x/some/path?expiry=consul&a=b": {"path, user info or port", "parameter: a"},
	} {
		_, err := openURL(t, raw)
		if !errors.Is(err, election.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", raw, err)
			continue
		}
		for _, want := range wants {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %q does not report %q", raw, err, want)
			}
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the password: %q", raw, err)
		}
	}
}
