package urlopt_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election/internal/urlopt"
)

var errInvalid = errors.New("test: invalid argument")

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", errInvalid, field, fmt.Sprintf(format, args...))
}

// config is what the test parameters set.
type config struct {
	Name     string
	Password string
	Timeout  time.Duration
	Delay    time.Duration // -1: none
	TLS      bool
	TLSSeen  bool
	Replicas int
	Odd      int
}

// params declares one parameter of each kind, with a secret among them.
func params(c *config) []urlopt.Param {
	return []urlopt.Param{
		urlopt.String("name", &c.Name),
		urlopt.Duration("timeout", &c.Timeout),
		urlopt.DurationOr("delay", &c.Delay, "none", -1),
		urlopt.Bool("tls", &c.TLS).Seen(&c.TLSSeen),
		urlopt.Int("replicas", &c.Replicas),
		urlopt.Func("odd", "an odd number", func(v string) error {
			if v != "1" && v != "3" {
				return fmt.Errorf("%q is even", v)
			}
			c.Odd = int(v[0] - '0')
			return nil
		}),
		urlopt.Func("password", "at least 8 characters", func(v string) error {
			if len(v) < 8 {
				return fmt.Errorf("%q is short", v)
			}
			c.Password = v
			return nil
		}).Secret(),
	}
}

// problems splits err into the errors it joins.
func problems(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		query string
		want  config   // the fields set, problems or not
		says  []string // one substring per problem, in order
		never []string // text no message may show
	}{
		{
			name:  "every kind well-formed",
			query: "name=app&timeout=1m30s&tls=true&replicas=2&odd=3&password=longenough",
			want:  config{Name: "app", Timeout: 90 * time.Second, TLS: true, TLSSeen: true, Replicas: 2, Odd: 3, Password: "longenough"},
		},
		{
			name:  "empty query",
			query: "",
		},
		{
			name:  "empty string is a string; false is seen",
			query: "name=&tls=false",
			want:  config{TLSSeen: true},
		},
		{
			name:  "negative duration is a duration",
			query: "timeout=-1s",
			want:  config{Timeout: -time.Second},
		},
		{
			name:  "unknown parameters listed with the known ones, sorted",
			query: "zeta=1&alpha=2&name=x",
			want:  config{Name: "x"},
			says:  []string{"url: unknown query parameters: alpha, zeta (known: delay, name, odd, password, replicas, timeout, tls; and for the elector: ttl, renew_interval, drift_margin, renew_timeout, op_timeout)"},
			never: []string{"=1", "=2"},
		},
		{
			name:  "one unknown parameter",
			query: "color=blue",
			says:  []string{"url: unknown query parameter: color (known: "},
			never: []string{"blue"},
		},
		{
			name:  "given twice",
			query: "timeout=1s&timeout=2s",
			says:  []string{"url timeout: given 2 times"},
		},
		{
			name:  "secret given twice is not echoed",
			query: "password=hunter2hunter2&password=hunter3hunter3",
			says:  []string{"url password: given 2 times"},
			never: []string{"hunter"},
		},
		{
			name:  "malformed duration",
			query: "timeout=soon",
			says:  []string{`url timeout: "soon" is not a duration such as 10s`},
		},
		{
			name:  "a duration or its word",
			query: "delay=none&timeout=2s",
			want:  config{Delay: -1, Timeout: 2 * time.Second},
		},
		{
			name:  "a duration where a word is also taken",
			query: "delay=1500ms",
			want:  config{Delay: 1500 * time.Millisecond},
		},
		{
			name:  "neither a duration nor the word",
			query: "delay=never",
			says:  []string{`url delay: "never" is not a duration such as 10s, or none`},
		},
		{
			name:  "empty duration",
			query: "timeout=",
			says:  []string{`url timeout: "" is not a duration such as 10s`},
		},
		{
			name:  "malformed bool is not seen",
			query: "tls=maybe",
			says:  []string{`url tls: "maybe" is not a boolean (true or false)`},
		},
		{
			name:  "malformed int",
			query: "replicas=two",
			says:  []string{`url replicas: "two" is not an integer`},
		},
		{
			name:  "int out of range",
			query: "replicas=99999999999999999999999",
			says:  []string{`url replicas: "99999999999999999999999" is not an integer`},
		},
		{
			name:  "custom setter: its own error text is not shown",
			query: "odd=2",
			says:  []string{`url odd: "2" is not an odd number`},
			never: []string{"even"},
		},
		{
			name:  "malformed secret is not echoed",
			query: "password=hunter2",
			says:  []string{"url password: the value (not shown: secret) is not at least 8 characters"},
			never: []string{"hunter2", "short"},
		},
		{
			name:  "every problem at once, good fields still set",
			query: "name=kept&timeout=soon&timeout=later&tls=maybe&replicas=two&odd=2&password=pw&bogus=1&extra=2",
			want:  config{Name: "kept"},
			says: []string{
				"url timeout: given 2 times",
				`url tls: "maybe" is not a boolean`,
				`url replicas: "two" is not an integer`,
				`url odd: "2" is not an odd number`,
				"url password: the value (not shown: secret)",
				"url: unknown query parameters: bogus, extra (known: ",
			},
			never: []string{`"pw"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			before := q.Encode()
			var got config
			err = urlopt.Parse(q, invalid, params(&got)...)
			checkProblems(t, err, tc.says, tc.never)
			if got != tc.want {
				t.Errorf("fields = %+v, want %+v", got, tc.want)
			}
			if q.Encode() != before {
				t.Errorf("Parse changed the query from %q to %q", before, q.Encode())
			}
		})
	}
}

// TestParseNoParams: a URL that takes no parameters says so.
func TestParseNoParams(t *testing.T) {
	err := urlopt.Parse(url.Values{"pool": {"3"}, "a": {"1", "2"}}, invalid)
	checkProblems(t, err, []string{"url: unknown query parameters: a, pool (this backend takes none; and for the elector: ttl, renew_interval, drift_margin, renew_timeout, op_timeout)"}, []string{"3"})
	if err := urlopt.Parse(url.Values{}, invalid); err != nil {
		t.Errorf("Parse of an empty query with no params = %v", err)
	}
}

func TestTake(t *testing.T) {
	for _, tc := range []struct {
		name  string
		query string
		want  config
		rest  string // the query left, encoded
		says  []string
		never []string
	}{
		{
			name:  "mine taken, the rest left",
			query: "pool_size=3&name=app&timeout=2s&read_timeout=1s",
			want:  config{Name: "app", Timeout: 2 * time.Second},
			rest:  "pool_size=3&read_timeout=1s",
		},
		{
			name:  "nothing of mine",
			query: "pool_size=3&pool_size=4",
			rest:  "pool_size=3&pool_size=4",
		},
		{
			name:  "malformed and repeated ones are taken too",
			query: "timeout=soon&tls=1&tls=0&password=short&other=x",
			rest:  "other=x",
			says: []string{
				`url timeout: "soon" is not a duration such as 10s`,
				"url tls: given 2 times",
				"url password: the value (not shown: secret)",
			},
			never: []string{"short"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			var got config
			err = urlopt.Take(q, invalid, params(&got)...)
			checkProblems(t, err, tc.says, tc.never)
			if got != tc.want {
				t.Errorf("fields = %+v, want %+v", got, tc.want)
			}
			if q.Encode() != tc.rest {
				t.Errorf("query left = %q, want %q", q.Encode(), tc.rest)
			}
		})
	}
}

// checkProblems checks that err joins exactly one error per entry of says,
// in order, each wrapping the sentinel and containing its entry, and that
// no message contains a string of never.
func checkProblems(t *testing.T, err error, says, never []string) {
	t.Helper()
	got := problems(err)
	if len(got) != len(says) {
		t.Fatalf("got %d problems, want %d: %v", len(got), len(says), err)
	}
	if err != nil && !errors.Is(err, errInvalid) {
		t.Errorf("error %v does not wrap the caller's sentinel", err)
	}
	for i, e := range got {
		if !errors.Is(e, errInvalid) {
			t.Errorf("problem %d (%v) does not wrap the caller's sentinel", i, e)
		}
		if !strings.Contains(e.Error(), says[i]) {
			t.Errorf("problem %d = %q, want it to contain %q", i, e, says[i])
		}
	}
	for _, n := range never {
		if err != nil && strings.Contains(err.Error(), n) {
			t.Errorf("error shows %q: %v", n, err)
		}
	}
}
