package consul

import (
	"encoding/json"
	"fmt"
	"hash/fnv"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/recordfmt"
)

// The stored layout, record format 1 (docs/record-format.md, section
// Consul). Every process of a prefix must compute the same keys, so the
// bucket count and the hash are part of the format: changing either is a
// new prefix, never a version bump.
//
//	<prefix>/<bucket>/<escaped name>   one election: {"v":1,"election","id","metadata","token"}
//	<prefix>/sessions/<session ID>     one session's marker: {"v":1}, locked by that session
//
// Buckets bound what one blocking query returns: a watch lists a whole
// bucket on every change in it, so with n elections under a prefix a change
// costs n/bucketCount keys (roughly 300 bytes each as the agent sends them)
// instead of n: about 100 KB at 10,000 elections. 32 rather than more
// because a backend runs one blocking query, one HTTP connection, per
// bucket in use, and the agent's default http_max_conns_per_client (200)
// counts every process on the host: 32 leaves room for several such
// processes and for their claims and renewals.

// bucketCount is the number of buckets an election can be in.
const bucketCount = 32

// sessionsSegment is the key segment of the session markers. It cannot be
// a bucket (two hex digits).
const sessionsSegment = "sessions"

// bucketOf returns the bucket of an election name: the FNV-1a 32-bit hash
// of the name's bytes, modulo bucketCount.
func bucketOf(name string) int {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32() % bucketCount)
}

// bucketSegment is the key segment of bucket i: two lower-case hex digits.
func bucketSegment(i int) string { return fmt.Sprintf("%02x", i) }

// bucketPrefix returns the KV prefix a bucket's blocking query lists,
// with its trailing '/': no key of another bucket or prefix starts with it.
func (b *Backend) bucketPrefix(i int) string { return b.s.prefix + "/" + bucketSegment(i) + "/" }

// markerKey returns the key of session id's marker.
func (b *Backend) markerKey(id string) string { return b.s.prefix + "/" + sessionsSegment + "/" + id }

// record is the JSON value stored at an election key, format 1. The owner
// token is stored verbatim, as the contract asks, so that release and renew
// can compare it; it is never logged and never copied into a Leader. Anyone
// with read access to the prefix can read it: grant KV read on the prefix
// only to the electing processes and operators.
type record struct {
	// V is the record format version of the writer (recordfmt.Version).
	V int `json:"v"`
	// Election is the unescaped name, for operators reading the KV store.
	Election string            `json:"election"`
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Token    string            `json:"token"`
}

func encodeRecord(req election.ClaimRequest) ([]byte, error) {
	return json.Marshal(record{V: recordfmt.Version, Election: req.Name, ID: req.ID, Metadata: req.Metadata, Token: req.Token})
}

// markerValue is the value of a session marker.
var markerValue = []byte(fmt.Sprintf(`{"v":%d}`, recordfmt.Version))

// keyView is what a read of an election key shows: its holder, the owner
// token, and whether the value is a record at all.
type keyView struct {
	// leader is the holder, nil when the election is vacant. A key whose
	// value is not a record is held by an unknown writer: leader then has
	// an empty ID and the key's ModifyIndex as its fence.
	leader *election.Leader
	token  string
	// foreign is set, naming the key, when the value is not a record.
	foreign error
}

// view decodes an election key. An absent key, or a present one that no
// session holds, is vacant, whatever its value: an election is held only by
// a live session's lock (Consul's own meaning of a lock), so a value written
// without one (a plain `consul kv put`, another program) never holds it, and
// the next claim replaces it. A locked value that is not a record (no format
// version: another program, or a build from before format 1) is held by an
// unknown writer until its session ends, never vacant.
func view(name string, p *api.KVPair) keyView {
	if p == nil || p.Session == "" {
		return keyView{}
	}
	var r record
	if _, err := recordfmt.Decode(p.Value, &r); err != nil {
		return keyView{
			leader:  &election.Leader{Election: name, Fence: p.ModifyIndex},
			foreign: fmt.Errorf("consul: key %q: %w", p.Key, err),
		}
	}
	return keyView{
		leader: &election.Leader{Election: name, ID: r.ID, Metadata: r.Metadata, Fence: p.ModifyIndex},
		token:  r.Token,
	}
}

// takenErr is the error of a claim, or of a leader read (what), that found
// the election held. For a key whose value is not a record it names the
// key, wraps [recordfmt.ErrNotARecord], and still wraps a *TakenError (an
// unknown holder, with the key's fence) so that callers treat the election
// as held, never as vacant.
func (v keyView) takenErr(what string) error {
	te := &election.TakenError{Holder: *v.leader}
	if v.foreign == nil {
		return te
	}
	return fmt.Errorf("consul: %s: %w; the election counts as held by an unknown writer until the session that locks the key ends or the key is deleted: %w", what, v.foreign, te)
}
