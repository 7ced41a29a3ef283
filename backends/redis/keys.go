package redis

import "strings"

// keyEscaper escapes the bytes that could make two (prefix, name) pairs meet
// on one key or split one election across Cluster hash slots: ':' (the
// separator), '{' and '}' (hash tag delimiters) and '%' (the escape byte).
// Everything else stays readable in redis-cli.
var keyEscaper = strings.NewReplacer("%", "%25", ":", "%3A", "{", "%7B", "}", "%7D")

// keys names everything one election uses on the server.
type keys struct {
	// leader holds the current term (JSON, see record) with a PX expiry.
	leader string
	// meta is a hash without expiry; its field "fence" is the last fencing
	// token issued for the election.
	meta string
	// channel carries one announcement per claim and release.
	channel string
}

// keysFor maps (prefix, name) to the election's keys. All of them share the
// hash tag "{" + escape(prefix) + ":" + escape(name) + "}", so a Cluster
// keeps them in one slot and one script may touch them together.
//
// The mapping is injective: the escaped parts contain no ':', '{' or '}',
// so the tag splits back at its only ':' into exactly one escaped prefix and
// one escaped name, and the escaping itself is reversible. Prefix "a" with
// name "b:x" gives tag "{a:b%3Ax}"; prefix "a:b" with name "x" gives
// "{a%3Ab:x}".
func keysFor(prefix, name string) keys {
	tag := "{" + keyEscaper.Replace(prefix) + ":" + keyEscaper.Replace(name) + "}"
	return keys{
		leader:  tag + ":leader",
		meta:    tag + ":meta",
		channel: tag + ":events",
	}
}
