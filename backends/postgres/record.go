package postgres

import (
	"encoding/json"

	"github.com/electionkit/election/internal/recordfmt"
)

// Kinds of announcement on the prefix's channel.
const (
	kindClaim   = "claim"
	kindRelease = "release"
	kindPing    = "ping" // the backend's own check that notifications reach its listener
)

// announcement is the payload of a NOTIFY on the prefix's channel, a
// versioned record (docs/record-format.md): a claim or release of an
// election at a fence, or a Backend's ping. It never carries an owner
// token; watchers read the election for its holder.
type announcement struct {
	V     int    `json:"v"`
	Kind  string `json:"kind"`
	Name  string `json:"name,omitempty"`
	Fence uint64 `json:"fence,omitempty"`
	Nonce string `json:"nonce,omitempty"` // ping
}

// decodeAnnouncement parses a payload; ok is false for anything that is
// not an announcement (another program notifying on the channel).
func decodeAnnouncement(payload string) (announcement, bool) {
	var a announcement
	if _, err := recordfmt.Decode([]byte(payload), &a); err != nil {
		return announcement{}, false
	}
	return a, true
}

// encodeMetadata is the metadata column's value: NULL for none.
func encodeMetadata(md map[string]string) (*string, error) {
	if len(md) == 0 {
		return nil, nil
	}
	data, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	s := string(data)
	return &s, nil
}

// decodeMetadata reads the metadata column (a JSON object of strings).
func decodeMetadata(s string) (map[string]string, error) {
	var md map[string]string
	if err := json.Unmarshal([]byte(s), &md); err != nil {
		return nil, err
	}
	return md, nil
}
