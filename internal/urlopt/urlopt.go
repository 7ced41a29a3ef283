// Package urlopt parses the query parameters of a backend URL, such as
// dial_timeout in etcd://h:2379/p?dial_timeout=2s, into configuration
// fields. It is the one place where the core and every backend do so, so
// that all of them reject the same mistakes with the same words.
//
// A caller declares the parameters it knows, each with a typed setter
// ([String], [Duration], [DurationOr], [Bool], [Int] or [Func]), and calls [Parse] (every
// parameter must be known) or [Take] (take the known ones out of the query,
// leave the rest for another parser). Either reports every problem at once
// with [errors.Join]: an unknown parameter (listing the known ones), a
// parameter given more than once, a malformed value (naming the parameter
// and, unless it is [Param.Secret], the value). The caller's [Invalid]
// builds each error, so that each wraps the caller's sentinel
// (election.ErrInvalidArgument) and carries the caller's prefix; this
// package cannot import the election package, which imports it.
package urlopt

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Invalid builds the error for one problem: field is "url" for the query
// as a whole or "url NAME" for parameter NAME, and format and args say what
// is wrong, in the manner of [fmt.Sprintf]. Callers pass their package's
// own constructor, which wraps election.ErrInvalidArgument; every error
// [Parse] and [Take] return is one from Invalid or a join of them.
type Invalid func(field, format string, args ...any) error

// Param is one query parameter a URL may carry: its name and how a value
// sets the field it configures. Build one with [String], [Duration],
// [Bool], [Int] or [Func]; the zero Param is not usable.
type Param struct {
	name   string
	want   string             // what a well-formed value is: "a duration such as 10s"
	set    func(string) error // nil error: the value was well-formed and is set
	secret bool
	seen   *bool
}

// String declares parameter name, whose value, any string including the
// empty one, is stored in *dst.
func String(name string, dst *string) Param {
	return Func(name, "a string", func(v string) error {
		*dst = v
		return nil
	})
}

// Duration declares parameter name, whose value is a Go duration such as
// 10s or -1m30s, parsed by [time.ParseDuration] and stored in *dst. An
// empty or malformed value is an error and leaves *dst unchanged. The sign
// is not checked: that belongs to the configuration's own validation, or
// to a [Func].
func Duration(name string, dst *time.Duration) Param {
	return DurationOr(name, dst, "", 0)
}

// DurationOr is [Duration] for a parameter that also takes word (unless it
// is ""), which stores wordValue: lock_delay=none, for one.
func DurationOr(name string, dst *time.Duration, word string, wordValue time.Duration) Param {
	want := "a duration such as 10s"
	if word != "" {
		want += ", or " + word
	}
	return Func(name, want, func(v string) error {
		if word != "" && v == word {
			*dst = wordValue
			return nil
		}
		d, err := time.ParseDuration(v)
		if err == nil {
			*dst = d
		}
		return err
	})
}

// Bool declares parameter name, whose value is a boolean as
// [strconv.ParseBool] reads it (true, false, 1, 0, t, f, ...), stored in
// *dst. An empty or malformed value is an error and leaves *dst unchanged.
func Bool(name string, dst *bool) Param {
	return Func(name, "a boolean (true or false)", func(v string) error {
		b, err := strconv.ParseBool(v)
		if err == nil {
			*dst = b
		}
		return err
	})
}

// Int declares parameter name, whose value is a decimal integer stored in
// *dst. An empty, malformed or out-of-range value is an error and leaves
// *dst unchanged.
func Int(name string, dst *int) Param {
	return Func(name, "an integer", func(v string) error {
		n, err := strconv.Atoi(v)
		if err == nil {
			*dst = n
		}
		return err
	})
}

// Func declares parameter name with a custom setter: set parses the value
// and stores it, or returns an error when the value is malformed. want
// says what a well-formed value is ("a positive duration such as 10s"):
// the error for a malformed value reads `"VALUE" is not WANT`. The text of
// set's error is not shown, as parsers' errors tend to repeat the value,
// which may be secret.
func Func(name, want string, set func(value string) error) Param {
	return Param{name: name, want: want, set: set}
}

// Secret returns p with its value kept out of error messages: a malformed
// value is reported without being shown. Mark passwords and tokens secret.
func (p Param) Secret() Param {
	p.secret = true
	return p
}

// Seen returns p that also sets *seen to true when the parameter is given
// once with a well-formed value, for callers whose meaning depends on
// whether it was given at all (tls=false is not the same as no tls).
func (p Param) Seen(seen *bool) Param {
	p.seen = seen
	return p
}

// Parse sets the field of every parameter in q from its value. Every
// parameter in q must be declared in params (names distinct). The error,
// nil if there is no problem, joins one error from invalid per problem:
// each declared parameter given more than once or with a malformed value,
// in the order of params, then all unknown parameters in one error that
// lists them and the known ones, sorted. Fields of parameters without a
// problem are set even when others have one. q is not changed.
func Parse(q url.Values, invalid Invalid, params ...Param) error {
	errs := set(q, invalid, params)
	var unknown []string
	for name := range q {
		if !slices.ContainsFunc(params, func(p Param) bool { return p.name == name }) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		errs = append(errs, unknownError(unknown, invalid, params))
	}
	return errors.Join(errs...)
}

// Take is [Parse] for a query shared with another parser: it sets the
// fields of the parameters declared in params, deletes them from q (also
// those with a problem), and leaves every other parameter in q for the
// next parser, which must then reject those it does not know.
func Take(q url.Values, invalid Invalid, params ...Param) error {
	errs := set(q, invalid, params)
	for _, p := range params {
		q.Del(p.name)
	}
	return errors.Join(errs...)
}

// set sets the fields of the parameters in params that q holds and returns
// an error for each one given more than once or malformed.
func set(q url.Values, invalid Invalid, params []Param) []error {
	var errs []error
	for _, p := range params {
		values, ok := q[p.name]
		if !ok {
			continue
		}
		field := "url " + p.name
		if len(values) != 1 {
			errs = append(errs, invalid(field, "given %d times", len(values)))
			continue
		}
		v := values[0]
		if err := p.set(v); err != nil {
			if p.secret {
				errs = append(errs, invalid(field, "the value (not shown: secret) is not %s", p.want))
			} else {
				errs = append(errs, invalid(field, "%q is not %s", v, p.want))
			}
			continue
		}
		if p.seen != nil {
			*p.seen = true
		}
	}
	return errs
}

// unknownError reports the unknown parameter names and lists the known
// ones, both sorted so that the message is the same from run to run.
func unknownError(unknown []string, invalid Invalid, params []Param) error {
	slices.Sort(unknown)
	noun := "parameter"
	if len(unknown) > 1 {
		noun = "parameters"
	}
	known := make([]string, len(params))
	for i, p := range params {
		known[i] = p.name
	}
	slices.Sort(known)
	var hints []string
	for _, u := range unknown {
		if near, ok := Suggest(u, append(slices.Clone(known), ElectorParams...)); ok {
			hints = append(hints, fmt.Sprintf("%s: did you mean %s?", u, near))
		}
	}
	hint := ""
	if len(hints) > 0 {
		hint = "; " + strings.Join(hints, "; ")
	}
	takes := "this backend takes none"
	if len(known) > 0 {
		takes = "known: " + strings.Join(known, ", ")
	}
	return invalid("url", "unknown query %s: %s (%s; and for the elector: %s)%s", noun, strings.Join(unknown, ", "),
		takes, strings.Join(ElectorParams, ", "), hint)
}
