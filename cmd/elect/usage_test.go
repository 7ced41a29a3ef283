package main

import (
	"strings"
	"testing"
)

// TestUsage: bad flags, values, variables and arguments exit 2 with a
// message naming what is wrong; --help exits 0 with examples. None of
// these reach a store.
func TestUsage(t *testing.T) {
	const url = "redis://127.0.0.1:1"
	for _, tc := range []struct {
		args []string
		env  string
		code int
		want string
	}{
		{nil, "", exitUsage, "Usage:"},
		{[]string{"frobnicate"}, "", exitUsage, `unknown command "frobnicate"`},
		{[]string{"run", "--help"}, "", exitOK, "Examples:"},
		{[]string{"help", "lease"}, "", exitOK, "--release"},
		{[]string{"run", "job", "true"}, "", exitUsage, "put -- before the command"},
		{[]string{"run", "job"}, "", exitUsage, "missing -- COMMAND"},
		{[]string{"run", "--", "true"}, "", exitUsage, "missing NAME"},
		{[]string{"run", "--restart", "sometimes", "job", "--", "true"}, "", exitUsage, `--restart "sometimes"`},
		{[]string{"run", "--ttl", "soon", "job", "--", "true"}, "", exitUsage, `invalid value "soon" for flag -ttl`},
		{[]string{"run", "--backoff", "-1s", "job", "--", "true"}, "", exitUsage, "--backoff -1s is not positive"},
		{[]string{"run", "job", "--", "no-such-command-here"}, "", exitNotFound, "no-such-command-here"},
		{[]string{"leader", "job"}, "ELECT_TLL=10s", exitUsage, "unknown environment variable ELECT_TLL"},
		{[]string{"lease", "job", "--", "true"}, "ELECT_TTL=forever", exitUsage, `ELECT_TTL="forever"`},
		{[]string{"lease", "job", "--", "true"}, "", exitUsage, "--ttl is required"},
		{[]string{"lease", "--ttl", "1s", "--grace", "1s", "job", "--", "true"}, "", exitUsage, "--grace 1s is too long"},
		{[]string{"leader", "-o", "yaml", "job"}, "", exitUsage, `-o "yaml"`},
		{[]string{"leader", "job", "--", "x"}, "", exitUsage, "takes no command"},
		{[]string{"leader", "job"}, "ELECTION_URL=", exitUsage, "no store"},
	} {
		name := strings.TrimSpace(tc.env + " elect " + strings.Join(tc.args, " "))
		env := []string{"ELECTION_URL=" + url}
		if tc.env != "" {
			env = append(env, tc.env)
		}
		p := startElectEnv(t, name, env, tc.args...)
		code := p.wait()
		out := p.stderr.String()
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d, want %d with %q in:\n%s", name, code, tc.code, tc.want, out)
		}
		if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
			t.Errorf("%s panicked:\n%s", name, out)
		}
	}
}
