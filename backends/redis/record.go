package redis

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/electionkit/election"
)

// record is the value stored under an election's leader key:
//
//	{"fence":F,"token":"…","id":"…","metadata":{…}}
//
// The claim script writes the fence in front of the JSON object Go encodes
// (ownerFields), because Lua numbers are doubles and cjson would print a
// microsecond timestamp in exponent form. Token is the owner token; it leaves
// this package only through comparisons in scripts, never through
// [election.Leader], an announcement or an error text.
type record struct {
	Fence    uint64            `json:"fence"`
	Token    string            `json:"token"`
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// ownerFields is the part of a record Go encodes; the script prepends the
// fence.
type ownerFields struct {
	Token    string            `json:"token"`
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// tokenNeedle is how the owner token appears in a stored record, right
// after the fence: `"token":"…",`. The scripts compare it byte for byte;
// ownerFields must keep Token first and another field after it.
func tokenNeedle(token string) string {
	encoded, _ := json.Marshal(token) // a string always encodes
	return `"token":` + string(encoded) + ","
}

// Announcement kinds on an election's channel.
const (
	kindClaim   = "claim"
	kindRelease = "release"
)

// announcement is published on the election's channel by the claim and
// release scripts. Like record, the script prepends the fence. It carries
// no owner token: anyone allowed to subscribe may read it.
type announcement struct {
	Fence    uint64            `json:"fence"`
	Kind     string            `json:"kind"`
	TTLMilli int64             `json:"ttl_ms,omitempty"`
	ID       string            `json:"id,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// claimFields is the part of a claim announcement Go encodes.
type claimFields struct {
	Kind     string            `json:"kind"`
	TTLMilli int64             `json:"ttl_ms"`
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// encodeClaim returns the JSON objects, without fence, that the claim script
// stores and publishes.
func encodeClaim(req election.ClaimRequest, ttl time.Duration) (stored, published string, err error) {
	s, err := json.Marshal(ownerFields{Token: req.Token, ID: req.ID, Metadata: req.Metadata})
	if err != nil {
		return "", "", err
	}
	p, err := json.Marshal(claimFields{Kind: kindClaim, TTLMilli: ttl.Milliseconds(), ID: req.ID, Metadata: req.Metadata})
	if err != nil {
		return "", "", err
	}
	return string(s), string(p), nil
}

// decodeRecord parses a stored value of election name. Its error never
// quotes the value, which holds the owner token.
func decodeRecord(name, value string) (record, error) {
	var r record
	if err := json.Unmarshal([]byte(value), &r); err != nil {
		return record{}, fmt.Errorf("redis: election %q: leader key does not hold an election record (written by another program?): %v",
			name, err)
	}
	return r, nil
}

// leader describes the term in r without its owner token.
func (r record) leader(name string) election.Leader {
	return election.Leader{Election: name, ID: r.ID, Metadata: r.Metadata, Fence: r.Fence}
}

// version orders the states of one election for watchers: a term's claim
// (2·fence) comes before its release (2·fence+1), which comes before any
// later term. Fences stay below 2^53, so this never overflows.
func claimVersion(fence uint64) uint64   { return 2 * fence }
func releaseVersion(fence uint64) uint64 { return 2*fence + 1 }

// pttl converts a PTTL reply (milliseconds; negative when the key has no
// expiry or is gone) to a duration, zero when unknown.
func pttl(ms int64) time.Duration {
	if ms <= 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}
