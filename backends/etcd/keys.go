package etcd

import (
	"encoding/json"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/electionkit/election"
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

// record is the value stored under an election key. Token is the owner
// token; it leaves this package only through comparisons, never through
// [election.Leader] or an error text.
type record struct {
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Token    string            `json:"token"`
}

func encodeRecord(req election.ClaimRequest) (string, error) {
	b, err := json.Marshal(record{ID: req.ID, Metadata: req.Metadata, Token: req.Token})
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeRecord parses the value of kv. Its error never quotes the value,
// which holds the owner token.
func decodeRecord(kv *mvccpb.KeyValue) (record, error) {
	var r record
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return record{}, fmt.Errorf("etcd: key %q does not hold an election record (written by another program?): %v",
			kv.Key, err)
	}
	return r, nil
}

// leaderOf describes the term stored in entry kv. Its fence is the entry's
// create revision.
func leaderOf(name string, kv *mvccpb.KeyValue) (election.Leader, error) {
	r, err := decodeRecord(kv)
	if err != nil {
		return election.Leader{}, err
	}
	return election.Leader{
		Election: name,
		ID:       r.ID,
		Metadata: r.Metadata,
		Fence:    uint64(kv.CreateRevision),
	}, nil
}
