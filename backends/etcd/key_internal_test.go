package etcd

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzElectionKey: the key mapping is injective. Every key splits at its
// last '/' into exactly the prefix and the escaped name it came from, so two
// different (prefix, name) pairs can never share a key.
func FuzzElectionKey(f *testing.F) {
	for _, seed := range [][2]string{{"a", "b/x"}, {"a/b", "x"}, {"a", "b%2Fx"}, {"", "/"}, {"p%", "%"}, {"electionkit", "wahl-ü"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, prefix, name string) {
		key := electionKey(prefix, name)
		cut := strings.LastIndexByte(key, '/')
		gotPrefix, escaped := key[:cut], key[cut+1:]
		gotName, err := url.PathUnescape(escaped)
		if err != nil || gotPrefix != prefix || gotName != name {
			t.Fatalf("key %q of (%q, %q) decodes to (%q, %q, %v)", key, prefix, name, gotPrefix, gotName, err)
		}
	})
}
