package etcd

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/recordfmt"
)

// TestFormatV1Fixtures: the format 1 values in testdata/format-v1 decode
// to what they say, and this version writes exactly those bytes for the
// same claim. A later version keeps the decoding half of this test.
func TestFormatV1Fixtures(t *testing.T) {
	for _, tc := range []struct {
		file string
		req  election.ClaimRequest
	}{
		{"entry.json", election.ClaimRequest{ID: "node-a", Metadata: map[string]string{"zone": "eu-1"}, Token: "3f9c1e7a0b5d4c2e8f6a1b3c5d7e9f01"}},
		{"entry-no-metadata.json", election.ClaimRequest{ID: "node-b", Token: "9a8b7c6d5e4f30211203f4e5d6c7b8a9"}},
	} {
		data, err := os.ReadFile(filepath.Join("testdata", "format-v1", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		data = bytes.TrimSpace(data)
		r, err := decodeRecord(&mvccpb.KeyValue{Key: []byte("p/n%00x"), Value: data})
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if r.V != 1 || r.ID != tc.req.ID || r.Token != tc.req.Token || !maps.Equal(r.Metadata, tc.req.Metadata) {
			t.Errorf("%s decoded to %+v, want %+v", tc.file, r, tc.req)
		}
		written, err := encodeRecord(tc.req)
		if err != nil {
			t.Fatal(err)
		}
		if written != string(data) {
			t.Errorf("this version writes %s for %s's claim, want the fixture's bytes %s", written, tc.file, data)
		}
	}
}

// TestDecodeNotARecord: a value without a format version is refused with
// an error that names the key, wraps recordfmt.ErrNotARecord and never
// quotes the value; the holder it describes is an unknown writer.
func TestDecodeNotARecord(t *testing.T) {
	for _, value := range []string{`{"id":"x","token":"secret-token"}`, `secret-token`, `{"v":0,"token":"secret-token"}`} {
		kv := &mvccpb.KeyValue{Key: []byte("p/n%00k"), Value: []byte(value), CreateRevision: 7}
		l, err := leaderOf("n", kv)
		if !errors.Is(err, recordfmt.ErrNotARecord) {
			t.Fatalf("leaderOf(%s) error = %v, want ErrNotARecord", value, err)
		}
		if !strings.Contains(err.Error(), `"p/n%00k"`) || strings.Contains(err.Error(), "secret-token") {
			t.Errorf("error %q must name the key and not quote the value", err)
		}
		if l.ID != "" || l.Fence != 7 || l.Election != "n" {
			t.Errorf("holder of a foreign value = %+v, want an unknown writer at fence 7", l)
		}
	}
}
