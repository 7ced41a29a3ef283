// Package recordfmt holds the one rule every backend follows for the values
// it stores: a JSON object that names its format version in a "v" field.
// docs/record-format.md describes each backend's keys and values.
//
// Compatibility: a process of format version N reads every value of
// version ≥ 1, ignoring the fields it does not know. Version N+1 may add
// fields and keys; it may not move a key, change the meaning of a field, or
// change what the store's atomic checks compare, because processes of both
// versions run at once during a rolling upgrade and must see each other's
// claims. A change that cannot keep to that is a new key prefix (a new
// namespace of elections), never a version bump under the same prefix.
package recordfmt

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Version is the record format version this build writes.
const Version = 1

// ErrNotARecord is returned for a value that is not a JSON object with a
// format version of at least 1: a value written by another program, or by a
// build of this library from before record formats were versioned.
var ErrNotARecord = errors.New("not an election record")

// versioned is the field every record carries.
type versioned struct {
	V *int `json:"v"`
}

// Decode parses data into rec (a pointer to a backend's record struct,
// which ignores unknown fields) after checking its format version. It
// returns the version read. Its error never quotes data, which may hold an
// owner token.
func Decode(data []byte, rec any) (int, error) {
	var v versioned
	if err := json.Unmarshal(data, &v); err != nil {
		return 0, fmt.Errorf("%w: not a JSON object with a numeric format version \"v\" (%d bytes)", ErrNotARecord, len(data))
	}
	if v.V == nil {
		return 0, fmt.Errorf("%w: no format version (\"v\"); written by another program or by a build from before format 1", ErrNotARecord)
	}
	if *v.V < 1 {
		return 0, fmt.Errorf("%w: format version %d", ErrNotARecord, *v.V)
	}
	if err := json.Unmarshal(data, rec); err != nil {
		return 0, fmt.Errorf("%w: format %d with a field of the wrong type: %v", ErrNotARecord, *v.V, redactJSONError(err))
	}
	return *v.V, nil
}

// redactJSONError keeps a decoding error's field and type, never the value.
func redactJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q is a JSON %s, want %s", te.Field, te.Value, te.Type)
	}
	return "malformed value"
}
