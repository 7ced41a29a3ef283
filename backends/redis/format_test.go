package redis

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/recordfmt"
)

// fixture returns a format 1 value from testdata/format-v1.
func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "format-v1", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const (
	fixtureSession = "5f0c6e1d2a9b4c3e8d7f6a5b4c3d2e1f"
	fixtureFence   = 1796054872003586
)

// Every format 1 fixture decodes, in this build and every later one.
func TestFormatV1FixturesDecode(t *testing.T) {
	var c claimRecord
	if v, err := recordfmt.Decode([]byte(fixture(t, "claim.json")), &c); err != nil || v != 1 ||
		c.Fence != fixtureFence || c.Session != fixtureSession || c.Token != "fixture-owner-token" || c.ID != "node-a" || c.Metadata["zone"] != "eu-1" {
		t.Errorf("claim.json = %+v, v%d, %v", c, v, err)
	}
	var s sessionRecord
	if v, err := recordfmt.Decode([]byte(fixture(t, "session.json")), &s); err != nil || v != 1 || s.TTLMilli != 10000 {
		t.Errorf("session.json = %+v, v%d, %v", s, v, err)
	}
	var f struct {
		Fence uint64 `json:"fence"`
	}
	if v, err := recordfmt.Decode([]byte(fixture(t, "fence.json")), &f); err != nil || v != 1 || f.Fence != fixtureFence {
		t.Errorf("fence.json = %+v, v%d, %v", f, v, err)
	}
	for file, want := range map[string]announcement{
		"announce-claim.json":       {V: 1, Fence: fixtureFence, Kind: kindClaim, Name: "orders", Session: fixtureSession, TTLMilli: 10000, ID: "node-a"},
		"announce-release.json":     {V: 1, Fence: fixtureFence, Kind: kindRelease, Name: "orders"},
		"announce-session-end.json": {V: 1, Kind: kindSessionEnd, Session: fixtureSession},
	} {
		var a announcement
		if _, err := recordfmt.Decode([]byte(fixture(t, file)), &a); err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		md := a.Metadata
		a.Metadata = nil
		if !reflect.DeepEqual(a, want) || (file == "announce-claim.json" && md["zone"] != "eu-1") {
			t.Errorf("%s = %+v, want %+v", file, a, want)
		}
	}
}

// What this build writes is format 1 exactly as the fixtures show it, up
// to the values that vary (fence, session ID): the layout the scripts'
// comparisons depend on cannot drift unnoticed.
func TestFormatV1WrittenAsFixtures(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	admin := srv.client(t)
	b := newBackend(t, srv.client(t), Config{NoQuarantine: true})
	k := keysFor(DefaultPrefix)
	ps := admin.Subscribe(ctx, k.channel)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	s := openSession(t, ctx, b, 10*time.Second)
	id := s.(*session).id
	req := election.ClaimRequest{Name: "orders", Token: "fixture-owner-token", ID: "node-a", Metadata: map[string]string{"zone": "eu-1"}}
	c := claim(t, ctx, s, req)
	if err := s.Release(ctx, c); err != nil {
		t.Fatal(err)
	}
	c = claim(t, ctx, s, req) // held again, for the comparison of the stored values
	normalize := func(v string) string {
		v = regexp.MustCompile(`"fence":\d+`).ReplaceAllString(v, `"fence":1796054872003586`)
		return strings.ReplaceAll(v, id, fixtureSession)
	}
	for key, file := range map[string]string{k.claim("orders"): "claim.json", k.session(id): "session.json"} {
		got, err := admin.Get(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if normalize(got) != fixture(t, file) {
			t.Errorf("%s holds %s, want the layout of %s: %s", key, got, file, fixture(t, file))
		}
	}
	if got, err := admin.HGet(ctx, k.fences, "orders").Result(); err != nil || normalize(got) != fixture(t, "fence.json") {
		t.Errorf("fences[orders] = %s, %v; want the layout of fence.json", got, err)
	}
	want := []string{"announce-claim.json", "announce-release.json", "announce-claim.json"}
	if err := s.Release(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want = append(want, "announce-release.json", "announce-session-end.json")
	for _, file := range want {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if normalize(msg.Payload) != fixture(t, file) {
			t.Errorf("announcement %s, want the layout of %s: %s", msg.Payload, file, fixture(t, file))
		}
	}
}

// A value of a later format (v 2, with fields format 1 does not know) under
// the same keys, as a process of the next version writes it during a
// rolling upgrade, is read by this build: Leader and Watch show it, a
// Claim is refused with its holder, and a waiting candidate takes over
// once it is released (a v2 announcement) or its v2 session key expires.
func TestFormatLaterVersionIsRead(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 60*time.Second)
	admin := srv.client(t)
	b := newBackend(t, srv.client(t), Config{NoQuarantine: true})
	k := keysFor(DefaultPrefix)
	const v2Session = "a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2"
	writeV2 := func(name string, fence string, sessionTTL time.Duration) {
		t.Helper()
		if err := admin.Set(ctx, k.session(v2Session), `{"v":2,"ttl_ms":1500,"lease_kind":"shared"}`, sessionTTL).Err(); err != nil {
			t.Fatal(err)
		}
		value := `{"v":2,"fence":` + fence + `,"session":"` + v2Session + `","token":"v2-owner-token","id":"v2-node","metadata":{"zone":"eu-2"},"priority":7,"added_in_2":{"x":[1,2]}}`
		if err := admin.Set(ctx, k.claim(name), value, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := admin.HSet(ctx, k.fences, name, `{"v":2,"fence":`+fence+`,"epoch":3}`).Err(); err != nil {
			t.Fatal(err)
		}
	}
	writeV2("v2-released", "1796054872003586", time.Minute)

	l, err := b.Leader(ctx, "v2-released")
	if err != nil || l.ID != "v2-node" || l.Fence != 1796054872003586 || l.Metadata["zone"] != "eu-2" {
		t.Fatalf("Leader of a v2 claim = %+v, %v", l, err)
	}
	ch, err := b.Watch(ctx, "v2-released")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch); ev.Leader == nil || ev.Leader.ID != "v2-node" {
		t.Fatalf("watch of a v2 claim = %+v", ev)
	}
	s := openSession(t, ctx, b, 10*time.Second)
	var taken *election.TakenError
	if _, err := s.Claim(ctx, request("v2-released", "v1")); !errors.As(err, &taken) || taken.Holder.ID != "v2-node" {
		t.Fatalf("Claim over a v2 claim = %v, want TakenError held by v2-node", err)
	}

	// A v1 candidate waits, and takes over when the v2 process releases
	// (DEL and a v2 announcement), then when a v2 session expires.
	el, err := election.New(b, election.Config{TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer el.Close(context.Background())
	waiter, err := el.NewCandidate(election.CandidateConfig{Name: "v2-released", ID: "v1-waiter"})
	if err != nil {
		t.Fatal(err)
	}
	if err := waiter.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if waiter.IsLeader() {
		t.Fatalf("a v1 candidate leads an election a v2 process holds")
	}
	if err := admin.Del(ctx, k.claim("v2-released")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Publish(ctx, k.channel, `{"v":2,"fence":1796054872003586,"kind":"release","name":"v2-released","reason":"resign"}`).Err(); err != nil {
		t.Fatal(err)
	}
	awaitLeader(t, ctx, waiter)
	if term, _ := waiter.Term(); term.Fence <= 1796054872003586 {
		t.Errorf("v1 term after the v2 one has fence %d, not above the v2 term's", term.Fence)
	}

	writeV2("v2-expiring", "1796054872003590", 1500*time.Millisecond)
	expiring, err := el.NewCandidate(election.CandidateConfig{Name: "v2-expiring", ID: "v1-waiter"})
	if err != nil {
		t.Fatal(err)
	}
	if err := expiring.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if expiring.IsLeader() {
		t.Fatalf("a v1 candidate leads an election a live v2 session holds")
	}
	awaitLeader(t, ctx, expiring) // the v2 session key expires unrenewed
}

// A value with no format version (another program, or a build from before
// format 1) is not a record: the election is held by an unknown writer,
// never vacant, and errors name the key without quoting the value.
func TestFormatUnversionedIsHeldByUnknown(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 30*time.Second)
	admin := srv.client(t)
	b := newBackend(t, srv.client(t), Config{NoQuarantine: true})
	k := keysFor(DefaultPrefix)
	const secret = "unversioned-secret-token"
	value := `{"fence":5,"session":"` + fixtureSession + `","token":"` + secret + `","id":"old"}`
	if err := admin.Set(ctx, k.claim("old"), value, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Leader(ctx, "old"); err == nil || errors.Is(err, election.ErrNoLeader) ||
		!strings.Contains(err.Error(), k.claim("old")) || strings.Contains(err.Error(), secret) {
		t.Errorf("Leader over an unversioned value = %v, want an error naming the key, not quoting the value", err)
	}
	s := openSession(t, ctx, b, 10*time.Second)
	_, err := s.Claim(ctx, request("old", "a"))
	var taken *election.TakenError
	if !errors.As(err, &taken) || taken.Holder.ID != "" || !errors.Is(err, election.ErrNotARecord) ||
		!strings.Contains(err.Error(), k.claim("old")) || strings.Contains(err.Error(), secret) {
		t.Errorf("Claim over an unversioned value = %v, want a TakenError naming the key, not quoting the value", err)
	}
	ch, err := b.Watch(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch); ev.Err != nil || ev.Leader == nil || ev.Leader.ID != "" {
		t.Errorf("watch over an unversioned value = %+v, want held by an unknown writer", ev)
	}
	if got, _ := admin.Get(ctx, k.claim("old")).Result(); got != value {
		t.Errorf("the unversioned value was changed")
	}
}

// awaitLeader waits until c leads.
func awaitLeader(t *testing.T, ctx context.Context, c *election.Candidate) {
	t.Helper()
	for !c.IsLeader() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s never led: %v", c.Election(), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
