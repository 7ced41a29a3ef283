package memory_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

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
		"memory://?expiry=zookeeper":             {"zookeeper is not etcd, redis or consul"},
		"memory://?expiry=etcd&expiry=redis":     {"expiry given more than once"},
		"memory://?pool=3&expiry=nope&size=1":    {"parameter pool", "parameter size", "nope is not"},
		"memory://x:80?bogus=1":                  {"path, user or port", "parameter bogus"},
		"memory://u:secret@x?expiry=redis":       {"path, user or port"},
		"memory://x/some/path?expiry=consul&a=b": {"path, user or port", "parameter a"},
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
