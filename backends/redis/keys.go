package redis

import "strings"

// keyEscaper escapes the bytes that could let two prefixes share a hash
// tag: '{' and '}' (hash tag delimiters) and '%' (the escape byte).
// Everything else stays readable in redis-cli.
var keyEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

// keys names everything the elections of one prefix use on the server. All
// of them share the hash tag "{" + escape(prefix) + "}", so on a Cluster
// every key of a prefix lives in one slot and one script may touch the
// claim, the fence and the session keys of any election of the prefix.
//
// The mapping is injective: the escaped prefix contains no '{' or '}', so
// the tag is exactly the key's first "{…}" and splits back into one prefix;
// the rest of a key is a fixed kind ("claim:", "session:") followed by a
// name or session ID, verbatim. Names need no escaping: a Cluster hashes
// only the first "{…}".
type keys struct {
	// fences is a hash without expiry: field = election name, value =
	// {"v":1,"fence":F}, the last fencing token issued for it.
	fences string
	// channel carries every claim, release and session end of the prefix.
	channel string
	// claimPrefix + name holds an election's current claim (JSON record,
	// no expiry): valid only while the session key it names exists.
	claimPrefix string
	// sessionPrefix + session ID is a session's key, with a PX expiry that
	// renewal extends.
	sessionPrefix string
	// lostPrefix + session ID is a set, living as long as the session key,
	// of the session's claims another session released by token:
	// "<fence>:<name>". Renewal reads it, so a claim taken away that way
	// is reported at the next renewal, atomically with it.
	lostPrefix string
}

// keysFor returns the keys of prefix.
func keysFor(prefix string) keys {
	escaped := keyEscaper.Replace(prefix)
	if escaped == "" {
		// "{}" is no hash tag. Config never lets the prefix be empty;
		// "%" alone is no escape's result, so it meets no other prefix.
		escaped = "%"
	}
	tag := "{" + escaped + "}"
	return keys{
		fences:        tag + ":fences",
		channel:       tag + ":events",
		claimPrefix:   tag + ":claim:",
		sessionPrefix: tag + ":session:",
		lostPrefix:    tag + ":lost:",
	}
}

// claim is the key of election name's claim.
func (k keys) claim(name string) string { return k.claimPrefix + name }

// session is the key of the session id.
func (k keys) session(id string) string { return k.sessionPrefix + id }

// lost is the key of the set of claims of the session id released by
// another session.
func (k keys) lost(id string) string { return k.lostPrefix + id }
