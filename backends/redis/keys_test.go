package redis

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestKeysInjective(t *testing.T) {
	pairs := [][2]string{
		{"a", "b:x"}, {"a:b", "x"}, // the classic collision of naive joining
		{"a", "b}x"}, {"a}b", "x"},
		{"a", "{b}"}, {"a{", "b}"},
		{"a%3A", "b"}, {"a:", "b"}, {"a", "%3Ab"},
		{"", "a:b"}, {"a", ":b"}, {"", ""},
	}
	seen := map[string][2]string{}
	for _, p := range pairs {
		k := keysFor(p[0], p[1])
		if other, dup := seen[k.leader]; dup {
			t.Errorf("prefix %q name %q and prefix %q name %q share key %q", p[0], p[1], other[0], other[1], k.leader)
		}
		seen[k.leader] = p
	}

	// Random pairs over an alphabet rich in separators and escapes.
	alphabet := []rune("ab:{}%37AD")
	word := func(r *rand.Rand) string {
		var sb strings.Builder
		for range r.IntN(6) {
			sb.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		return sb.String()
	}
	r := rand.New(rand.NewPCG(1, 2))
	seen = map[string][2]string{}
	for range 20000 {
		p := [2]string{word(r), word(r)}
		k := keysFor(p[0], p[1])
		if other, dup := seen[k.leader]; dup && other != p {
			t.Fatalf("prefix %q name %q and prefix %q name %q share key %q", p[0], p[1], other[0], other[1], k.leader)
		}
		seen[k.leader] = p
	}
}

func TestKeysShareHashSlot(t *testing.T) {
	for _, p := range [][2]string{{"election", "x"}, {"a}", "{b}"}, {"{", "}"}, {"", "name:with:colons"}} {
		k := keysFor(p[0], p[1])
		tag := hashTag(k.leader)
		if tag == k.leader {
			t.Fatalf("prefix %q name %q: key %q has no hash tag", p[0], p[1], k.leader)
		}
		for _, other := range []string{k.meta, k.channel} {
			if hashTag(other) != tag {
				t.Errorf("prefix %q name %q: %q and %q hash differently (%q vs %q)", p[0], p[1], k.leader, other, tag, hashTag(other))
			}
		}
		if !strings.HasPrefix(k.leader, "{"+keyEscaper.Replace(p[0])+":") {
			t.Errorf("key %q does not start with the ACL-friendly prefix", k.leader)
		}
	}
}

// hashTag is the part of key a Redis Cluster hashes: between the first '{'
// and the first '}' after it, if non-empty; else the whole key.
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return key
	}
	return key[open+1 : open+1+end]
}
