package consul

import (
	"strings"
)

// Consul's HTTP KV endpoint accepts only ASCII letters, digits and ",-_./"
// in keys, and rejects keys with "../" or ending in a file extension it
// deems risky (".json", ".com", ...). Election names are arbitrary UTF-8, so
// a name is stored as one key segment escaped to letters, digits and '-':
// every other byte, '_' itself included, becomes '_' and two upper-case hex
// digits ("billing.cron" → "billing_2Ecron", "a/b" → "a_2Fb"). The escaped
// segment has no '.', '/' or '%', so it is always a valid key, and the
// escaping is reversible, so distinct names give distinct keys. The segment
// never contains '/', so Prefix + "/" + segment also never equals a key of
// another prefix.

const hexDigits = "0123456789ABCDEF"

// escapeName returns the key segment of an election name.
func escapeName(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isLiteral(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xF])
	}
	return b.String()
}

func isLiteral(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
}

// checkPrefix enforces the rules documented on Config.Prefix.
func checkPrefix(p string) error {
	if len(p) > 512 {
		return invalid("Prefix", "%d bytes, longer than 512", len(p))
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" {
			return invalid("Prefix", "%q has an empty segment (leading, trailing or double '/')", p)
		}
		// The agent cleans request paths: "." segments would vanish from
		// the keys it reads but not from those transactions write.
		if seg == "." || strings.Contains(seg, "..") {
			return invalid("Prefix", "%q has a \".\" segment or contains \"..\"", p)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !isLiteral(c) && c != '_' && c != '.' && c != ',' {
				return invalid("Prefix", "%q contains %q; use ASCII letters, digits and \"-_.,/\"", p, c)
			}
		}
	}
	return nil
}
