package election_test

import (
	"errors"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// Any name is either accepted or rejected with ErrInvalidArgument; an
// accepted name is one a candidate can be made for.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"", "jobs", "a/b", "\x00", "\xff\xfe", "名前", string(make([]byte, 300))} {
		f.Add(s)
	}
	b := memory.New()
	el, err := election.New(b, election.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := election.ValidateName(b, name)
		if err != nil && !errors.Is(err, election.ErrInvalidArgument) {
			t.Fatalf("ValidateName(%q) = %v: not ErrInvalidArgument", name, err)
		}
		_, cerr := el.NewCandidate(election.CandidateConfig{Name: name, ID: "x"})
		if (err == nil) != (cerr == nil) {
			t.Fatalf("ValidateName(%q) = %v but NewCandidate = %v", name, err, cerr)
		}
	})
}

// Any option values either build an elector whose timing keeps the safety
// rule's preconditions, or fail with ErrInvalidArgument. Never a panic or a
// silently changed value.
func FuzzConfig(f *testing.F) {
	f.Add(int64(10e9), int64(0), int64(0), 0.0, int64(0), int64(0))
	f.Add(int64(-1), int64(5), int64(1e9), 0.7, int64(-5), int64(3))
	f.Add(int64(1e6), int64(1e6), int64(1), 0.5, int64(1), int64(1))
	b := memory.New()
	f.Fuzz(func(t *testing.T, ttl, renew, drift int64, jitter float64, rmin, rmax int64) {
		in := election.Config{
			TTL: time.Duration(ttl), RenewInterval: time.Duration(renew), DriftMargin: time.Duration(drift),
			RenewJitter: jitter, RetryMin: time.Duration(rmin), RetryMax: time.Duration(rmax),
		}
		el, err := election.New(b, in)
		if err != nil {
			if !errors.Is(err, election.ErrInvalidArgument) {
				t.Fatalf("New(%+v) = %v: not ErrInvalidArgument", in, err)
			}
			return
		}
		got := el.Config()
		for _, p := range []struct {
			name    string
			in, out time.Duration
		}{{"TTL", in.TTL, got.TTL}, {"RenewInterval", in.RenewInterval, got.RenewInterval}, {"DriftMargin", in.DriftMargin, got.DriftMargin}} {
			if p.in != 0 && p.in != p.out {
				t.Fatalf("%s silently changed from %v to %v", p.name, p.in, p.out)
			}
		}
		if got.RenewInterval >= got.TTL-got.DriftMargin || got.DriftMargin <= 0 || got.TTL <= 0 {
			t.Fatalf("accepted unsafe timing %+v", got)
		}
	})
}

// The URL parser never panics, and rejects with ErrInvalidArgument.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"etcd://h1:2379,h2:2379/p?ttl=10s", "redis://:pw@127.0.0.1:6379/0", "consul://x?ttl=1h&ttl=2h", "%", "memory://?drift_margin=-1s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		cfg, u, err := election.ParseURL(raw)
		if err != nil {
			if !errors.Is(err, election.ErrInvalidArgument) {
				t.Fatalf("ParseURL(%q) = %v: not ErrInvalidArgument", raw, err)
			}
			return
		}
		if u == nil || u.Scheme == "" {
			t.Fatalf("ParseURL(%q) accepted a URL without scheme", raw)
		}
		if cfg.TTL < 0 || cfg.RenewInterval < 0 || cfg.DriftMargin < 0 {
			t.Fatalf("ParseURL(%q) accepted negative durations: %+v", raw, cfg)
		}
		if q := u.Query(); q.Has(election.ParamTTL) || q.Has(election.ParamRenewInterval) || q.Has(election.ParamDriftMargin) {
			t.Fatalf("ParseURL(%q) left elector parameters for the backend: %v", raw, u)
		}
	})
}
