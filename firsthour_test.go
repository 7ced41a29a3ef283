package election_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/electionkit/election"
	_ "github.com/electionkit/election/backends/memory"
)

// Settings.ID and Metadata reach the candidates of an elector built from
// Settings.Open, outside fx too.
func TestSettingsOpenCarriesIDAndMetadata(t *testing.T) {
	s := election.Settings{URL: "memory://first-hour", ID: "billing-1", Metadata: map[string]string{"addr": "10.0.0.7:8080", "v": "elector"}}
	b, cfg, err := s.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer election.CloseBackend(b)
	el := mustElector(t, b, cfg)
	c := mustCandidate(t, el, election.CandidateConfig{Name: "job", Metadata: map[string]string{"v": "candidate"}})
	if c.ID() != "billing-1" {
		t.Errorf("candidate ID %q, want Settings.ID %q", c.ID(), "billing-1")
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	l, ok := c.Leader()
	if !ok || l.ID != "billing-1" || l.Metadata["addr"] != "10.0.0.7:8080" || l.Metadata["v"] != "candidate" {
		t.Errorf("leader %+v (%v), want ID billing-1 with the elector's addr and the candidate's own v", l, ok)
	}
	if err := el.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := election.New(b, election.Config{ID: "bad\x00id"}); !errors.Is(err, election.ErrInvalidArgument) {
		t.Errorf("New with a control character in Config.ID = %v, want ErrInvalidArgument", err)
	}
}

// The environment: a zero duration is an error, not "the default"; a
// likely typo of a setting is an error that names the setting; other
// variables with the prefix are someone else's.
func TestFromEnvRejectsZeroAndTypos(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want []string // substrings of the error; nil: no error
	}{
		{map[string]string{"ELECTION_TTL": "0s"}, []string{"ELECTION_TTL", "positive"}},
		{map[string]string{"ELECTION_RENEW_INTERVAL": "-1s"}, []string{"ELECTION_RENEW_INTERVAL"}},
		{map[string]string{"ELECTION_TLL": "5s"}, []string{"ELECTION_TLL", "did you mean ELECTION_TTL?"}},
		{map[string]string{"ELECTION_OP_TIMEOUTS": "1s"}, []string{"did you mean ELECTION_OP_TIMEOUT?"}},
		{map[string]string{"ELECTION_SOMETHING_ELSE": "x", "ELECTION_TTL": "5s"}, nil},
	} {
		t.Run("", func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := election.Settings{}.FromEnv("ELECTION_")
			if tc.want == nil {
				if err != nil {
					t.Fatalf("FromEnv with %v = %v, want no error", tc.env, err)
				}
				return
			}
			if !errors.Is(err, election.ErrInvalidArgument) {
				t.Fatalf("FromEnv with %v = %v, want ErrInvalidArgument", tc.env, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("FromEnv with %v: %q does not say %q", tc.env, err, w)
				}
			}
		})
	}
}

// A URL without a scheme, and an unknown option, get errors that say what
// to write instead.
func TestOpenURLMistakes(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string
		not  string
	}{
		{"127.0.0.1:2379", `no "scheme://"`, ""},
		{"localhost:6379", `no "scheme://"`, ""},
		{"admin:hunter2@redis.internal:6379", `no "scheme://"`, "hunter2"},
		{"etcd:/h1:2379/p?password=hunter2", `no "scheme://"`, "hunter2"},
		{"h1:2379/prefix?password=hunter2", `no "scheme://"`, "hunter2"},
		{"consul:/host:8500?token=s3cr3t-acl", `no "scheme://"`, "s3cr3t"},
		{"memory://x?tll=5s", "did you mean ttl?", ""},
		{"memory://x?renew_intervall=5s", "did you mean renew_interval?", ""},
	} {
		_, _, err := election.Open(context.Background(), tc.url)
		if !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) = %v, want ErrInvalidArgument saying %q", tc.url, err, tc.want)
		}
		if tc.not != "" && err != nil && strings.Contains(err.Error(), tc.not) {
			t.Errorf("Open(%q) error quotes %q: %v", tc.url, tc.not, err)
		}
	}
}

// The URL parameters urlopt suggests for the elector are the ones ParseURL
// takes.
func TestElectorParamsMatch(t *testing.T) {
	for _, p := range []string{election.ParamTTL, election.ParamRenewInterval, election.ParamDriftMargin, election.ParamRenewTimeout, election.ParamOpTimeout} {
		_, _, err := election.ParseURL("memory://x?" + p + "=1s")
		if err != nil {
			t.Errorf("ParseURL with %s: %v", p, err)
		}
		if _, _, err := election.Open(context.Background(), "memory://x?"+p+"x=1s"); err == nil || !strings.Contains(err.Error(), "did you mean "+p+"?") {
			t.Errorf("Open with %sx: %v, want a suggestion of %s", p, err, p)
		}
	}
}
