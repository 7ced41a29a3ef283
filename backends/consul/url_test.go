package consul

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
)

func TestOpenURL(t *testing.T) {
	clearConsulEnv(t)
	u, _ := url.Parse("consul://127.0.0.1:8500?token=s3cret&dc=dc2&prefix=team/app&min_ttl=1s&lock_delay=15s&wait=10s&session_name=svc")
	b, err := OpenURL(t.Context(), u)
	if err != nil {
		t.Fatalf("OpenURL: %v", err)
	}
	defer b.Close()
	s := b.s
	if s.api.Address != "127.0.0.1:8500" || s.token != "s3cret" || s.datacenter != "dc2" || s.prefix != "team/app" ||
		s.minTTL != time.Second || s.lockDelay != 15*time.Second || s.watchWait != 10*time.Second || s.sessionName != "svc" {
		t.Errorf("settings from URL = %+v", s)
	}

	u, _ = url.Parse("consul://127.0.0.1:8500?lock_delay=none")
	bn, err := OpenURL(t.Context(), u)
	if err != nil {
		t.Fatalf("OpenURL with lock_delay=none: %v", err)
	}
	defer bn.Close()
	if bn.s.lockDelay != NoLockDelay {
		t.Errorf("lock_delay=none: lock-delay %v, want NoLockDelay", bn.s.lockDelay)
	}

	u, _ = url.Parse("consul://h:8501?tls=true&insecure_skip_verify=true")
	b2, err := OpenURL(t.Context(), u)
	if err != nil {
		t.Fatalf("OpenURL with tls: %v", err)
	}
	defer b2.Close()
	if b2.s.api.Scheme != "https" || !b2.s.api.TLSConfig.InsecureSkipVerify {
		t.Errorf("tls=true: scheme %q skip-verify %v", b2.s.api.Scheme, b2.s.api.TLSConfig.InsecureSkipVerify)
	}
}

func TestOpenURLRejects(t *testing.T) {
	clearConsulEnv(t)
	u, _ := url.Parse("consul://user:pw@h:8500/some/path?bogus=1&also_bogus=2&wait=soon&dc=a&dc=b&token=NEVER-PRINTED")
	_, err := OpenURL(t.Context(), u)
	if !errors.Is(err, election.ErrInvalidArgument) {
		t.Fatalf("OpenURL = %v, want ErrInvalidArgument", err)
	}
	msg := err.Error()
	for _, want := range []string{"also_bogus, bogus", "user info", `path "/some/path"`, `url wait: "soon" is not a duration`, "url dc: given 2 times"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "NEVER-PRINTED") || strings.Contains(msg, "pw") {
		t.Errorf("error leaks a secret:\n%s", msg)
	}
}

// TestRegistered: the package registers its scheme, and the core's URL
// entry point reaches OpenURL with the core's own parameters removed.
func TestRegistered(t *testing.T) {
	clearConsulEnv(t)
	if !slices.Contains(election.Schemes(), Scheme) {
		t.Fatalf("election.Schemes() = %v, want %q registered", election.Schemes(), Scheme)
	}
	cfg, u, err := election.ParseURL("consul://127.0.0.1:8500?ttl=12s&prefix=p")
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	if cfg.TTL != 12*time.Second {
		t.Errorf("ttl = %v", cfg.TTL)
	}
	b, err := OpenURL(t.Context(), u)
	if err != nil {
		t.Fatalf("OpenURL after ParseURL: %v", err)
	}
	defer b.Close()
	if b.Prefix() != "p" {
		t.Errorf("prefix = %q", b.Prefix())
	}
}
