package consul

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/history"
)

// TestFormatV1Fixtures pins record format 1 (docs/record-format.md): the key
// of every election and session marker, computed by an independent
// implementation of the bucket hash, and the values this build writes. Every
// later build must pass it unchanged: processes of both versions compute the
// same keys and read each other's values during a rolling upgrade.
func TestFormatV1Fixtures(t *testing.T) {
	dir := filepath.Join("testdata", "format-v1")
	var keys []struct{ Prefix, Name, Session, Key string }
	readJSON(t, filepath.Join(dir, "keys.json"), &keys)
	for _, k := range keys {
		b := &Backend{s: settings{prefix: k.Prefix}}
		got := b.Key(k.Name)
		if k.Session != "" {
			got = b.markerKey(k.Session)
		}
		if got != k.Key {
			t.Errorf("prefix %q, name %q, session %q: key %q, fixture says %q", k.Prefix, k.Name, k.Session, got, k.Key)
		}
	}

	for _, tc := range []struct {
		file string
		req  election.ClaimRequest
	}{
		{"claim.json", election.ClaimRequest{Name: "billing.cron", ID: "node-a", Token: "9f3c2a71d0e84b6c8e1f5a2b7c4d6e80",
			Metadata: map[string]string{"region": "eu-west-1", "version": "2.3.1"}}},
		{"claim-no-metadata.json", election.ClaimRequest{Name: "outbox-dispatcher", ID: "pod-7", Token: "0a1b2c3d4e5f60718293a4b5c6d7e8f9"}},
	} {
		fixture := readFile(t, filepath.Join(dir, tc.file))
		written, err := encodeRecord(tc.req)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(written, fixture) {
			t.Errorf("%s: this build writes %s", tc.file, written)
		}
		v := view(tc.req.Name, &api.KVPair{Key: "k", Value: fixture, Session: "s", ModifyIndex: 42})
		if v.foreign != nil || v.leader == nil || v.token != tc.req.Token {
			t.Fatalf("%s: read as %+v", tc.file, v)
		}
		want := election.Leader{Election: tc.req.Name, ID: tc.req.ID, Metadata: tc.req.Metadata, Fence: 42}
		if got := *v.leader; got.Election != want.Election || got.ID != want.ID || got.Fence != want.Fence || len(got.Metadata) != len(want.Metadata) {
			t.Errorf("%s: leader %+v, want %+v", tc.file, got, want)
		}
		for k, val := range want.Metadata {
			if v.leader.Metadata[k] != val {
				t.Errorf("%s: metadata %q = %q, want %q", tc.file, k, v.leader.Metadata[k], val)
			}
		}
	}
	if marker := readFile(t, filepath.Join(dir, "marker.json")); !bytes.Equal(marker, markerValue) {
		t.Errorf("marker: this build writes %s, fixture says %s", markerValue, marker)
	}
}

// laterValue is a value of a later record format: "v":2 with fields format
// 1 does not know, some of them where format 1 has none (a nested object, a
// list), as a rolling upgrade would show this build.
const laterValue = `{"v":2,"election":"upgrade","id":"next-version","metadata":{"build":"2"},` +
	`"token":"tok-v2-0123456789abcdef","term":{"epoch":7,"zone":"b"},"capabilities":["transfer"],"since":"2027-01-01T00:00:00Z"}`

// TestReadsLaterFormat writes a format 2 claim with the raw Consul API, as
// the next version of this package would during a rolling upgrade, and
// checks that this build sees it held through every read (Leader, Watch,
// Claim says taken) and that a candidate of this build waiting on it takes
// over once it is released, by a delete or by its session ending.
func TestReadsLaterFormat(t *testing.T) {
	a := startAgent(t, agentOptions{})
	raw := a.client(t)
	b := a.backend(t, nil)
	for _, release := range []string{"delete", "destroy"} {
		t.Run(release, func(t *testing.T) {
			name := "upgrade-" + release
			sid, _, err := raw.Session().Create(&api.SessionEntry{TTL: "30s", Behavior: api.SessionBehaviorDelete, LockDelay: time.Nanosecond}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ok, _, err := raw.KV().Acquire(&api.KVPair{Key: b.Key(name), Value: []byte(laterValue), Session: sid}, nil)
			if err != nil || !ok {
				t.Fatalf("raw acquire: %v, %v", ok, err)
			}
			held := rawKey(t, raw, b, name)

			l, err := b.Leader(t.Context(), name)
			if err != nil || l.ID != "next-version" || l.Fence != held.ModifyIndex || l.Metadata["build"] != "2" || l.Election != name {
				t.Fatalf("Leader of a format 2 claim = %+v, %v", l, err)
			}
			ch, err := b.Watch(t.Context(), name)
			if err != nil {
				t.Fatal(err)
			}
			if ev := next(t, ch, 10*time.Second); ev.Err != nil || ev.Leader == nil || ev.Leader.ID != "next-version" || ev.Leader.Fence != held.ModifyIndex {
				t.Fatalf("first watch event = %+v, want the format 2 holder", ev)
			}
			s := openSession(t, b, testMinTTL)
			_, err = s.Claim(t.Context(), election.ClaimRequest{Name: name, Token: "mine", ID: "this-version"})
			var te *election.TakenError
			if !errors.As(err, &te) || te.Holder.ID != "next-version" || te.Holder.Fence != held.ModifyIndex {
				t.Fatalf("Claim over a format 2 claim = %v, want TakenError naming next-version", err)
			}

			// A candidate of this build campaigns, then the format 2
			// holder lets go.
			el, err := election.New(b, election.Config{TTL: testMinTTL * 2})
			if err != nil {
				t.Fatal(err)
			}
			defer el.Close(context.Background())
			c, err := el.NewCandidate(election.CandidateConfig{Name: name, ID: "this-version"})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			if c.IsLeader() {
				t.Fatalf("candidate leads while the format 2 claim is held")
			}
			switch release {
			case "delete":
				_, err = raw.KV().Delete(b.Key(name), nil)
			default:
				_, err = raw.Session().Destroy(sid, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			freed := time.Now()
			if ev := next(t, ch, 10*time.Second); ev.Err != nil || (ev.Leader != nil && ev.Leader.ID != "this-version") {
				t.Fatalf("watch event after the release = %+v, want a vacancy or this build's candidate", ev)
			}
			for !c.IsLeader() {
				if time.Since(freed) > 10*time.Second {
					t.Fatalf("candidate did not take over within 10s of the format 2 claim's release (state %v)", c.State())
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("%s: took over %v after the format 2 claim was released", release, time.Since(freed).Round(time.Millisecond))
			term, _ := c.Term()
			if term.Fence <= held.ModifyIndex {
				t.Fatalf("fence %d not above the format 2 term's %d", term.Fence, held.ModifyIndex)
			}
			if err := c.Stop(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestForeignValue: a value that is not a record (no format version: another
// program, or a build from before format 1) locked by a live session makes
// the election held by an unknown writer, never vacant, until that session
// ends; errors name the key and never quote the value. The same value
// written without a lock (a plain `consul kv put`) holds nothing: the
// election is vacant and the next claim replaces it.
func TestForeignValue(t *testing.T) {
	a := startAgent(t, agentOptions{})
	raw := a.client(t)
	b := a.backend(t, nil)
	const secret = "owner-token-of-someone-else"
	value := []byte(`{"election":"x","id":"old-build","token":"` + secret + `"}`)

	t.Run("Locked", func(t *testing.T) {
		const name = "foreign-locked"
		sid, _, err := raw.Session().Create(&api.SessionEntry{TTL: "30s", Behavior: api.SessionBehaviorDelete, LockDelay: time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ok, _, err := raw.KV().Acquire(&api.KVPair{Key: b.Key(name), Value: value, Session: sid}, nil); err != nil || !ok {
			t.Fatalf("raw acquire: %v, %v", ok, err)
		}
		fence := rawKey(t, raw, b, name).ModifyIndex
		check := func(what string, err error) {
			t.Helper()
			var te *election.TakenError
			switch {
			case errors.Is(err, election.ErrNoLeader) || err == nil:
				t.Fatalf("%s of %q = %v: a foreign value counted as vacant", what, name, err)
			case !errors.As(err, &te) || te.Holder.ID != "" || te.Holder.Fence != fence:
				t.Fatalf("%s of %q = %v, want a TakenError with an unknown holder at fence %d", what, name, err, fence)
			case !errors.Is(err, election.ErrNotARecord) || !strings.Contains(err.Error(), b.Key(name)):
				t.Fatalf("%s of %q = %v, want ErrNotARecord naming the key", what, name, err)
			case strings.Contains(err.Error(), secret):
				t.Fatalf("%s error quotes the stored value: %v", what, err)
			}
		}
		_, err = b.Leader(t.Context(), name)
		check("Leader", err)
		s := openSession(t, b, testMinTTL)
		_, err = s.Claim(t.Context(), election.ClaimRequest{Name: name, Token: "t", ID: "me"})
		check("Claim", err)
		ch, err := b.Watch(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if ev := next(t, ch, 10*time.Second); ev.Err != nil || ev.Leader == nil || ev.Leader.ID != "" || ev.Leader.Fence != fence {
			t.Fatalf("watch of %q = %+v, want an unknown holder at fence %d", name, ev, fence)
		}
		// Its session ends: Consul deletes the key, the election is free.
		if _, err := raw.Session().Destroy(sid, nil); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, ch, 10*time.Second); ev.Err != nil || ev.Leader != nil {
			t.Fatalf("watch of %q after the foreign session ended = %+v, want vacant", name, ev)
		}
		claim(t, s, name, "t", "me")
	})

	t.Run("Unlocked", func(t *testing.T) {
		const name = "foreign-unlocked"
		if _, err := raw.KV().Put(&api.KVPair{Key: b.Key(name), Value: value}, nil); err != nil {
			t.Fatal(err)
		}
		if l, err := b.Leader(t.Context(), name); !errors.Is(err, election.ErrNoLeader) {
			t.Fatalf("Leader of an unlocked foreign value = %+v, %v; want ErrNoLeader", l, err)
		}
		ch, err := b.Watch(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if ev := next(t, ch, 10*time.Second); ev.Err != nil || ev.Leader != nil {
			t.Fatalf("watch of an unlocked foreign value = %+v, want vacant", ev)
		}
		s := openSession(t, b, testMinTTL)
		c := claim(t, s, name, "t", "me")
		if p := rawKey(t, raw, b, name); p.Session != s.id || p.ModifyIndex != c.Fence {
			t.Fatalf("key after the claim = %+v, want locked by the claim at fence %d", p, c.Fence)
		}
	})
}

// TestForeignWrite: a plain `consul kv put` over a held election key (which
// keeps the holder's lock) must not leave the election locked for ever. The
// holder steps down when its watch shows the rewrite, its session deletes
// the rewritten key at its next renewal, and a candidate is elected again
// with a fence above the foreign write's, with no overlap in the history. Both a value that is
// not a record and a record with another token are tried.
func TestForeignWrite(t *testing.T) {
	a := startAgent(t, agentOptions{})
	raw := a.client(t)
	for _, tc := range []struct{ name, value string }{
		{"NotARecord", `operator was here`},
		{"OtherToken", `{"v":1,"election":"foreign-write","id":"intruder","token":"not-yours"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hist := history.New(time.Now)
			ttl := 2 * time.Second
			candidate := func(id string) (*election.Candidate, *Backend) {
				b := a.backend(t, func(c *Config) { c.Prefix = "fw-" + strings.ToLower(tc.name) })
				el, err := election.New(b, election.Config{TTL: ttl, OnEvent: hist.OnEvent(id)})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 2*ttl+5*time.Second)
					defer cancel()
					_ = el.Close(ctx)
				})
				c, err := el.NewCandidate(election.CandidateConfig{Name: "foreign-write", ID: id, Handlers: []election.Handler{hist.Handler(id)}})
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Start(t.Context()); err != nil {
					t.Fatal(err)
				}
				return c, b
			}
			ca, ba := candidate("a")
			waitFor(t, 20*time.Second, "a to lead", ca.IsLeader)
			cb, _ := candidate("b")
			before := rawKey(t, raw, ba, "foreign-write")
			if _, err := raw.KV().Put(&api.KVPair{Key: ba.Key("foreign-write"), Value: []byte(tc.value)}, nil); err != nil {
				t.Fatal(err)
			}
			if p := rawKey(t, raw, ba, "foreign-write"); p.Session != before.Session {
				t.Fatalf("the plain put did not keep the holder's lock (session %q, was %q): the test does not test the case", p.Session, before.Session)
			}
			written := time.Now()
			foreignFence := rawKey(t, raw, ba, "foreign-write").ModifyIndex
			// Either candidate may win the vacancy: a campaigns again as
			// soon as its step-down is over.
			var next election.Term
			waitFor(t, 30*time.Second, "a new term after the foreign write", func() bool {
				for _, c := range []*election.Candidate{ca, cb} {
					if term, ok := c.Term(); ok && term.Fence > foreignFence {
						next = term
						return true
					}
				}
				return false
			})
			t.Logf("%s elected %v after the foreign write", next.ID, next.Since.Sub(written).Round(time.Millisecond))
			if p := rawKey(t, raw, ba, "foreign-write"); p == nil || p.ModifyIndex != next.Fence {
				t.Fatalf("key after the new term = %+v, want the new term's claim at fence %d", p, next.Fence)
			}
			hist.Report(t, history.Bounds{})
		})
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(data, []byte("\n"))
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	if err := json.Unmarshal(readFile(t, path), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
