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

// FuzzEntryRange: the entries of two different elections never share a
// range, whatever their prefixes: an entry key starts with an election's
// range only if it is that election's. Config rejects '%' in a prefix, so
// the fuzzer's prefixes are taken without it.
func FuzzEntryRange(f *testing.F) {
	for _, seed := range [][4]string{
		{"a", "b", "a/b", "x"}, {"a", "b", "a", "b/x"}, {"a", "b", "a", "b%00"},
		{"a", "b%", "a", "b"}, {"a/b", "%00x", "a", "b"}, {"", "x", "", "x"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, p1, n1, p2, n2 string) {
		p1, p2 = strings.ReplaceAll(p1, "%", ""), strings.ReplaceAll(p2, "%", "")
		key := entryRange(p2, n2) + "0123456789abcdef-1"
		same := p1 == p2 && n1 == n2
		if got := strings.HasPrefix(key, entryRange(p1, n1)); got != same {
			t.Fatalf("entry %q of (%q, %q) in the range of (%q, %q): %v", key, p2, n2, p1, n1, got)
		}
	})
}
