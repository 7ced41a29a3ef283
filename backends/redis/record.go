package redis

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/recordfmt"
)

// Stored values (docs/record-format.md, section Redis). Every value and
// announcement is a JSON object with the format version "v"
// (recordfmt.Version when written); readers accept any v ≥ 1 and ignore
// fields they do not know.
//
// A claim key holds
//
//	{"v":1,"fence":F,"session":"<session id>","token":"…","id":"…","metadata":{…}}
//
// in exactly this order up to the token: the scripts find the holder's
// session with a pattern anchored at the start, and compare the owner
// token byte for byte right after it (ownsLua). The claim script writes
// `{"v":1,"fence":F,` in front of the object Go encodes (claimTail),
// because Lua numbers are doubles and cjson would print a microsecond
// timestamp in exponent form. Token leaves this package only through
// comparisons in scripts, never through [election.Leader], an
// announcement or an error text.
type claimRecord struct {
	V        int               `json:"v"`
	Fence    uint64            `json:"fence"`
	Session  string            `json:"session"`
	Token    string            `json:"token"`
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// claimTail is the part of a claim record Go encodes. Session and Token
// must stay first, in this order, with a field after Token (tokenNeedle).
type claimTail struct {
	Session  string            `json:"session"`
	Token    string            `json:"token"`
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// sessionRecord is the value of a session key. Scripts test only whether
// the key exists; the fields are for operators.
type sessionRecord struct {
	V        int   `json:"v"`
	TTLMilli int64 `json:"ttl_ms"`
}

// tokenNeedle is how the owner token appears in a stored claim, right
// after the session: `"token":"…",`. The scripts compare it byte for byte.
func tokenNeedle(token string) string {
	encoded, _ := json.Marshal(token) // a string always encodes
	return `"token":` + string(encoded) + ","
}

// Announcement kinds on the prefix's channel.
const (
	kindClaim      = "claim"
	kindRelease    = "release"
	kindSessionEnd = "session_end"
)

// announcement is published on the prefix's one channel: by the claim
// script (kind claim, with the holder), the release script (kind release)
// and Session.Close (kind session_end: every claim of Session is vacant).
// Like a claim record, the scripts write `{"v":1,"fence":F,` in front. It
// carries no owner token: anyone allowed to subscribe may read it.
type announcement struct {
	V        int               `json:"v"`
	Fence    uint64            `json:"fence,omitempty"`
	Kind     string            `json:"kind"`
	Name     string            `json:"name,omitempty"`
	Session  string            `json:"session,omitempty"`
	TTLMilli int64             `json:"ttl_ms,omitempty"`
	ID       string            `json:"id,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// claimAnnouncementTail is the part of a claim announcement Go encodes.
type claimAnnouncementTail struct {
	Kind     string            `json:"kind"`
	Name     string            `json:"name"`
	Session  string            `json:"session"`
	TTLMilli int64             `json:"ttl_ms"`
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// versionPrefix starts every value a script writes: the format version and
// the fence follow it.
var versionPrefix = `{"v":` + strconv.Itoa(recordfmt.Version) + `,"fence":`

// encodeClaim returns the JSON objects, without version and fence, that the
// claim script stores and publishes.
func encodeClaim(req election.ClaimRequest, sessionID string, ttlMilli int64) (stored, published string, err error) {
	s, err := json.Marshal(claimTail{Session: sessionID, Token: req.Token, ID: req.ID, Metadata: req.Metadata})
	if err != nil {
		return "", "", err
	}
	p, err := json.Marshal(claimAnnouncementTail{Kind: kindClaim, Name: req.Name, Session: sessionID, TTLMilli: ttlMilli, ID: req.ID, Metadata: req.Metadata})
	if err != nil {
		return "", "", err
	}
	return string(s), string(p), nil
}

// encodeSession returns a session key's value.
func encodeSession(ttlMilli int64) string {
	v, _ := json.Marshal(sessionRecord{V: recordfmt.Version, TTLMilli: ttlMilli})
	return string(v)
}

// encodeSessionEnd returns the announcement that a session ended.
func encodeSessionEnd(sessionID string) string {
	v, _ := json.Marshal(announcement{V: recordfmt.Version, Kind: kindSessionEnd, Session: sessionID})
	return string(v)
}

// jsonString returns s as a JSON string, for scripts that splice it.
func jsonString(s string) string {
	v, _ := json.Marshal(s)
	return string(v)
}

// decodeClaim parses the value of key, the claim of election name. Its
// error names the key and never quotes the value, which holds the owner
// token; it wraps recordfmt.ErrNotARecord for a value with no format
// version (another program, or a build from before format 1).
func decodeClaim(name, key, value string) (claimRecord, error) {
	var r claimRecord
	if _, err := recordfmt.Decode([]byte(value), &r); err != nil {
		return claimRecord{}, fmt.Errorf("redis: election %q: key %q: %w", name, key, err)
	}
	return r, nil
}

// leader describes the term in r without its owner token.
func (r claimRecord) leader(name string) election.Leader {
	return election.Leader{Election: name, ID: r.ID, Metadata: r.Metadata, Fence: r.Fence}
}

// newSessionID returns a random session ID: 32 hex digits, which the
// scripts' session pattern ([%w_%-]+) matches.
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}

// version orders the states of one election for watchers: a term's claim
// (2·fence) comes before its end (2·fence+1: released, or its session
// gone), which comes before any later term. Fences stay below 2^53, so
// this never overflows.
func claimVersion(fence uint64) uint64 { return 2 * fence }
func endVersion(fence uint64) uint64   { return 2*fence + 1 }
