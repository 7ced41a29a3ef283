package redis

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestKeysInjective(t *testing.T) {
	prefixes := []string{"a", "a:b", "a}", "{a", "a%7D", "a%", "", "{", "}", "a}b{"}
	seen := map[string]string{}
	for _, p := range prefixes {
		k := keysFor(p)
		if other, dup := seen[hashTag(k.fences)]; dup {
			t.Errorf("prefixes %q and %q share hash tag %q", p, other, hashTag(k.fences))
		}
		seen[hashTag(k.fences)] = p
	}

	// Random prefixes over an alphabet rich in delimiters and escapes.
	alphabet := []rune("ab:{}%37AD")
	word := func(r *rand.Rand) string {
		var sb strings.Builder
		for range r.IntN(6) {
			sb.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		return sb.String()
	}
	r := rand.New(rand.NewPCG(1, 2))
	seen = map[string]string{}
	for range 20000 {
		p := word(r)
		tag := hashTag(keysFor(p).fences)
		if other, dup := seen[tag]; dup && other != p {
			t.Fatalf("prefixes %q and %q share hash tag %q", p, other, tag)
		}
		seen[tag] = p
	}
}

// Every key of a prefix, whatever the election name or session ID, hashes
// to the prefix's one slot: names are not escaped, because a Cluster
// hashes only the key's first "{…}".
func TestKeysShareHashSlot(t *testing.T) {
	for _, p := range []string{"election", "a}", "{", "}", "x:y"} { // never "": Config defaults it
		k := keysFor(p)
		tag := hashTag(k.fences)
		if tag == k.fences {
			t.Fatalf("prefix %q: key %q has no hash tag", p, k.fences)
		}
		for _, other := range []string{k.channel, k.claim("x"), k.claim("{tag}"), k.claim("}{"), k.claim(""), k.session("0123abcd")} {
			if hashTag(other) != tag {
				t.Errorf("prefix %q: %q and %q hash differently (%q vs %q)", p, k.fences, other, tag, hashTag(other))
			}
		}
		if !strings.HasPrefix(k.fences, "{"+keyEscaper.Replace(p)+"}:") {
			t.Errorf("key %q does not start with the ACL-friendly prefix", k.fences)
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
