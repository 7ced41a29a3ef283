package consul

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/electionkit/election"
)

// unescapeName inverts escapeName; it exists to prove the escaping is
// injective (a function with an inverse is one-to-one).
func unescapeName(seg string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case isLiteral(c):
			b.WriteByte(c)
		case c == '_' && i+2 < len(seg):
			hi, lo := strings.IndexByte(hexDigits, seg[i+1]), strings.IndexByte(hexDigits, seg[i+2])
			if hi < 0 || lo < 0 {
				return "", fmt.Errorf("bad escape at %d in %q", i, seg)
			}
			b.WriteByte(byte(hi<<4 | lo))
			i += 2
		default:
			return "", fmt.Errorf("byte %q at %d in %q", c, i, seg)
		}
	}
	return b.String(), nil
}

// names are election names chosen to collide under naive mappings.
var names = []string{
	"a", "A", "a/b", "a_2Fb", "a%2Fb", "a_b", "_", "__", "-", ".", "..", "../x", "x/..", "/lead", "lead/",
	"a//b", "svc.json", "job.log", "v1.2", " space ", "ünï", "日本", "a,b", "a b", "%", "%25", "a?b#c",
	strings.Repeat("z", 256),
}

func TestEscapeNameIsInjectiveAndSafe(t *testing.T) {
	seen := map[string]string{}
	for _, name := range names {
		seg := escapeName(name)
		if other, dup := seen[seg]; dup {
			t.Errorf("names %q and %q both map to %q", name, other, seg)
		}
		seen[seg] = name
		back, err := unescapeName(seg)
		if err != nil || back != name {
			t.Errorf("unescape(escape(%q)) = %q, %v", name, back, err)
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; !isLiteral(c) && c != '_' {
				t.Errorf("escape(%q) = %q contains %q: not a safe key character", name, seg, c)
			}
		}
	}
}

// TestPrefixesNeverCollide: two different (prefix, name) pairs never give
// the same key, including pairs built to collide under a mapping that kept
// '/' in names ("a" + "b/c" versus "a/b" + "c").
func TestPrefixesNeverCollide(t *testing.T) {
	prefixes := []string{"a", "a/b", "a/b/c", "b", "a_2Fb", "electionkit", "x.y", "x,y"}
	keys := map[string][2]string{}
	for _, p := range prefixes {
		if err := checkPrefix(p); err != nil {
			t.Fatalf("prefix %q rejected: %v", p, err)
		}
		b := &Backend{s: settings{prefix: p}}
		for _, name := range append(names, "b/c", "c", "b", "c/d") {
			key := b.Key(name)
			if prev, dup := keys[key]; dup {
				t.Errorf("key %q for both %q+%q and %q+%q", key, prev[0], prev[1], p, name)
			}
			keys[key] = [2]string{p, name}
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for p, ok := range map[string]bool{
		"electionkit": true, "team/app": true, "a.b/c-d_e,f": true,
		"": false, "/abs": false, "trail/": false, "a//b": false, ".": false, "a/./b": false,
		"a/../b": false, "..": false, "a b": false, "a%2F": false, "ü": false,
		strings.Repeat("p", 513): false,
	} {
		err := checkPrefix(p)
		if (err == nil) != ok {
			t.Errorf("checkPrefix(%q) = %v, want ok=%v", p, err, ok)
		}
		if err != nil && !errors.Is(err, election.ErrInvalidArgument) {
			t.Errorf("checkPrefix(%q) = %v, not ErrInvalidArgument", p, err)
		}
	}
}

func TestValidateName(t *testing.T) {
	b := &Backend{s: settings{prefix: DefaultPrefix}}
	for _, name := range names {
		if err := b.ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v: every name the core accepts is storable", name, err)
		}
	}
	for _, name := range []string{"", strings.Repeat("x", 257), "bad\xffutf8", "nul\x00", "new\nline"} {
		if err := b.ValidateName(name); !errors.Is(err, election.ErrInvalidArgument) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidArgument", name, err)
		}
	}
}
