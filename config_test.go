package election_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
	"sigs.k8s.io/yaml"
)

// limited is a memory backend with the limits of a stricter store.
type limited struct {
	*memory.Client
	lim election.Limits
}

func (l limited) Limits() election.Limits { return l.lim }

func TestNewRejectsBadConfigNamingEveryField(t *testing.T) {
	b := limited{memory.New(), election.Limits{MinTTL: time.Second, MaxTTL: time.Hour, TTLGranularity: time.Second}}
	cases := []struct {
		name   string
		cfg    election.Config
		fields []string
	}{
		{"negative TTL", election.Config{TTL: -time.Second}, []string{"TTL"}},
		{"TTL below store minimum", election.Config{TTL: 500 * time.Millisecond}, []string{"TTL", "minimum 1s"}},
		{"TTL above store maximum", election.Config{TTL: 2 * time.Hour}, []string{"TTL", "maximum"}},
		{"TTL not in whole seconds", election.Config{TTL: 1500 * time.Millisecond}, []string{"TTL", "whole multiple", "1s or 2s"}},
		{"renew not below TTL", election.Config{TTL: 3 * time.Second, RenewInterval: 3 * time.Second}, []string{"RenewInterval"}},
		{"renew eats the drift margin", election.Config{TTL: 10 * time.Second, RenewInterval: 9500 * time.Millisecond}, []string{"RenewInterval"}},
		{"drift margin too big", election.Config{TTL: 10 * time.Second, DriftMargin: 6 * time.Second}, []string{"DriftMargin"}},
		{"jitter out of range", election.Config{TTL: 10 * time.Second, RenewJitter: 0.9}, []string{"RenewJitter"}},
		{"retry bounds inverted", election.Config{TTL: 10 * time.Second, RetryMin: time.Second, RetryMax: time.Millisecond}, []string{"RetryMax"}},
		{"several at once", election.Config{TTL: 10 * time.Second, RenewJitter: -1, RetryMin: -1}, []string{"RenewJitter", "RetryMin"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := election.New(b, tc.cfg)
			if !errors.Is(err, election.ErrInvalidArgument) {
				t.Fatalf("New(%+v) = %v, want ErrInvalidArgument", tc.cfg, err)
			}
			for _, f := range tc.fields {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("error %q does not name %q", err, f)
				}
			}
		})
	}
	if _, err := election.New(b, election.Config{}); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
}

func TestValidateName(t *testing.T) {
	b := limited{memory.New(), election.Limits{MaxNameLen: 8}}
	for _, name := range []string{"", "123456789", "a\x00b", "tab\there", "\xff"} {
		if err := election.ValidateName(b, name); !errors.Is(err, election.ErrInvalidArgument) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidArgument", name, err)
		}
	}
	for _, name := range []string{"a", "12345678", "jobs/α", "a b"} {
		if err := election.ValidateName(b, name); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", name, err)
		}
	}
}

func TestNewCandidateRejectsBadConfig(t *testing.T) {
	el := mustElector(t, memory.New(), election.Config{})
	cases := []election.CandidateConfig{
		{Name: ""},
		{Name: "ok", ID: strings.Repeat("x", 257)},
		{Name: "ok", ID: "bad\x01id"},
		{Name: "ok", Handlers: []election.Handler{nil}},
		{Name: "ok", EventBuffer: -1},
	}
	for _, cfg := range cases {
		if _, err := el.NewCandidate(cfg); !errors.Is(err, election.ErrInvalidArgument) {
			t.Errorf("NewCandidate(%+v) = %v, want ErrInvalidArgument", cfg, err)
		}
	}
}

func TestOpenURL(t *testing.T) {
	b, cfg, err := election.Open(t.Context(), "memory://url-test?ttl=3s&renew_interval=1s&drift_margin=300ms&renew_timeout=400ms&op_timeout=250ms")
	if err != nil {
		t.Fatal(err)
	}
	defer election.CloseBackend(b)
	if cfg.TTL != 3*time.Second || cfg.RenewInterval != time.Second || cfg.DriftMargin != 300*time.Millisecond ||
		cfg.RenewTimeout != 400*time.Millisecond || cfg.OpTimeout != 250*time.Millisecond {
		t.Fatalf("cfg = %+v", cfg)
	}
	if _, err := election.New(b, cfg); err != nil {
		t.Fatalf("New with the URL's settings: %v", err)
	}
	for _, bad := range []string{
		"", "no-scheme", "nosuch://x", "memory://x?ttl=abc", "memory://x?ttl=-1s", "memory://x?bogus=1",
		"memory://x?ttl=1s&ttl=2s", "memory://x:80", "memory://x?renew_timeout=0s", "memory://x?op_timeout=soon",
	} {
		if _, _, err := election.Open(t.Context(), bad); !errors.Is(err, election.ErrInvalidArgument) {
			t.Errorf("Open(%q) = %v, want ErrInvalidArgument", bad, err)
		}
	}
	_, _, err = election.Open(t.Context(), "nosuch://x")
	if !strings.Contains(err.Error(), "memory") || !strings.Contains(err.Error(), "forgotten import") {
		t.Errorf("unknown scheme error %q should list registered schemes and hint at the import", err)
	}
}

func TestSettingsFromEnv(t *testing.T) {
	t.Setenv("APP_ELECTION_URL", "memory://env")
	t.Setenv("APP_ELECTION_TTL", "4s")
	t.Setenv("APP_ELECTION_ID", "pod-7")
	s, err := election.Settings{URL: "memory://file", TTL: election.Duration(time.Minute)}.FromEnv("APP_ELECTION_")
	if err != nil {
		t.Fatal(err)
	}
	if s.URL != "memory://env" || time.Duration(s.TTL) != 4*time.Second || s.ID != "pod-7" {
		t.Fatalf("settings = %+v", s)
	}
	t.Setenv("APP_ELECTION_RENEW_INTERVAL", "soon")
	if _, err := s.FromEnv("APP_ELECTION_"); !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "APP_ELECTION_RENEW_INTERVAL") {
		t.Fatalf("bad env duration = %v, want ErrInvalidArgument naming the variable", err)
	}
	if _, _, err := (election.Settings{}).Open(t.Context()); !errors.Is(err, election.ErrInvalidArgument) {
		t.Fatalf("Settings without URL = %v, want ErrInvalidArgument", err)
	}
}

// Settings load from a service's own JSON or YAML config file.
func TestSettingsDecode(t *testing.T) {
	want := election.Settings{
		URL: "etcd://h1:2379,h2:2379/shop", TTL: election.Duration(15 * time.Second),
		RenewInterval: election.Duration(4 * time.Second), ID: "pod-1", Metadata: map[string]string{"zone": "a"},
	}
	jsonDoc := `{"url":"etcd://h1:2379,h2:2379/shop","ttl":"15s","renew_interval":"4s","id":"pod-1","metadata":{"zone":"a"}}`
	yamlDoc := "url: etcd://h1:2379,h2:2379/shop\nttl: 15s\nrenew_interval: 4s\nid: pod-1\nmetadata:\n  zone: a\n"
	for name, decode := range map[string]func(*election.Settings) error{
		"json": func(s *election.Settings) error { return json.Unmarshal([]byte(jsonDoc), s) },
		"yaml": func(s *election.Settings) error { return yaml.UnmarshalStrict([]byte(yamlDoc), s) },
	} {
		var got election.Settings
		if err := decode(&got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.URL != want.URL || got.TTL != want.TTL || got.RenewInterval != want.RenewInterval || got.ID != want.ID || got.Metadata["zone"] != "a" {
			t.Fatalf("%s decoded %+v, want %+v", name, got, want)
		}
	}
	var bad election.Settings
	if err := json.Unmarshal([]byte(`{"ttl":"soon"}`), &bad); !errors.Is(err, election.ErrInvalidArgument) {
		t.Fatalf("bad duration in JSON = %v, want ErrInvalidArgument", err)
	}
	out, err := json.Marshal(want)
	if err != nil || !strings.Contains(string(out), `"ttl":"15s"`) {
		t.Fatalf("Marshal = %s, %v; want ttl as \"15s\"", out, err)
	}
}
