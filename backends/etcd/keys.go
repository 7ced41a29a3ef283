package etcd

import (
	"encoding/json"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/recordfmt"
)

// nameEscaper escapes the two bytes that could make two (prefix, name)
// pairs meet on one key: '/' (the separator) and '%' (the escape byte).
// Everything else stays readable in etcdctl.
var nameEscaper = strings.NewReplacer("%", "%25", "/", "%2F")

// electionKey maps (prefix, name) to an etcd key: prefix + "/" + escaped
// name. The mapping is injective: the escaped name has no '/', so the last
// '/' of a key splits it back into exactly one prefix and one escaped name,
// and the escaping itself is reversible. Prefix "a" with name "b/x" gives
// "a/b%2Fx"; prefix "a/b" with name "x" gives "a/b/x".
func electionKey(prefix, name string) string {
	return prefix + "/" + nameEscaper.Replace(name)
}

// entryMarker ends the key prefix of an election's entries: every claim,
// held or waiting in line, is a key electionKey + entryMarker + suffix. The
// marker never occurs in an escaped name (which holds '%' only in "%25" and
// "%2F") nor in a prefix (Config rejects '%'), so the one occurrence in a
// key follows its election's key: the range of one election holds the
// entries of that election and of no other, whatever the prefixes.
const entryMarker = "%00"

// entryRange returns the key prefix of the entries of election (prefix,
// name): a range read or watch with it sees that election and no other.
func entryRange(prefix, name string) string { return electionKey(prefix, name) + entryMarker }

// record is the value of an entry, format 1 (docs/record-format.md): a
// JSON object with the format version "v", the holder's candidate ID, its
// metadata and the owner token. Token leaves this package only through
// comparisons, never through [election.Leader] or an error text. Fields a
// later format adds are ignored when read.
type record struct {
	V        int               `json:"v"`
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Token    string            `json:"token"`
}

func encodeRecord(req election.ClaimRequest) (string, error) {
	b, err := json.Marshal(record{V: recordfmt.Version, ID: req.ID, Metadata: req.Metadata, Token: req.Token})
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeRecord parses the value of kv with recordfmt.Decode. Its error
// names the key and wraps recordfmt.ErrNotARecord; it never quotes the
// value, which holds the owner token.
func decodeRecord(kv *mvccpb.KeyValue) (record, error) {
	var r record
	if _, err := recordfmt.Decode(kv.Value, &r); err != nil {
		return record{}, fmt.Errorf("etcd: key %q does not hold an election record (written by another program?): %w",
			kv.Key, err)
	}
	return r, nil
}

// leaderOf describes the term stored in entry kv. Its fence is the entry's
// create revision. An entry that is not an election record still holds
// the election (it is never taken for a vacancy): the error is returned
// with unknownHolder(name, kv).
func leaderOf(name string, kv *mvccpb.KeyValue) (election.Leader, error) {
	r, err := decodeRecord(kv)
	if err != nil {
		return unknownHolder(name, kv), err
	}
	return election.Leader{
		Election: name,
		ID:       r.ID,
		Metadata: r.Metadata,
		Fence:    uint64(kv.CreateRevision),
	}, nil
}

// unknownHolder describes an entry whose value is not an election record:
// an unknown writer holds the election. Its ID is empty (no candidate has
// an empty ID) and its fence is the entry's create revision.
func unknownHolder(name string, kv *mvccpb.KeyValue) election.Leader {
	return election.Leader{Election: name, Fence: uint64(kv.CreateRevision)}
}
