package etcd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
)

// putRaw writes value at key with a fresh lease of 60s, as another writer
// would, and returns the write's revision (the entry's create revision).
func putRaw(t *testing.T, raw *clientv3.Client, key, value string) int64 {
	t.Helper()
	ctx := testCtx(t)
	lease, err := raw.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := raw.Put(ctx, key, value, clientv3.WithLease(lease.ID))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// TestLaterFormatRecord: an entry of a later format ("v":2 with fields
// format 1 does not know), written raw by a newer process, is read by this
// version: Leader and Watch show it, Claim reports Taken by it, Enqueue
// queues behind it, and the claim in line takes over when it is deleted.
func TestLaterFormatRecord(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	raw := rawClient(t, srv.addr)
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}, Prefix: "fmt"})
	s := openSession(t, b, 2*time.Second)

	const key = "fmt/upgrading%00v2-writer-1"
	fence := putRaw(t, raw, key, `{"v":2,"id":"v2-node","metadata":{"zone":"eu-2"},"token":"v2-secret-token",`+
		`"term_started":"2026-11-30T00:00:00Z","transfer":{"to":"node-c","deadline_ms":1500}}`)

	l, err := b.Leader(ctx, "upgrading")
	if err != nil || l.ID != "v2-node" || l.Fence != uint64(fence) || l.Metadata["zone"] != "eu-2" {
		t.Fatalf("Leader = %+v, %v; want v2-node at fence %d", l, err, fence)
	}
	events, err := b.Watch(ctx, "upgrading")
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Leader == nil || ev.Leader.ID != "v2-node" || ev.Leader.Fence != uint64(fence) {
		t.Fatalf("first watch event = %s, want v2-node@%d", holder(ev), fence)
	}
	_, err = s.Claim(ctx, election.ClaimRequest{Name: "upgrading", Token: "token-v1", ID: "v1-node"})
	var taken *election.TakenError
	if !errors.As(err, &taken) || taken.Holder.ID != "v2-node" || taken.Holder.Fence != uint64(fence) {
		t.Fatalf("Claim = %v, want Taken by v2-node", err)
	}
	if strings.Contains(err.Error(), "v2-secret-token") {
		t.Fatalf("error quotes the holder's token: %v", err)
	}
	c, h, err := s.(election.Queuer).Enqueue(ctx, election.ClaimRequest{Name: "upgrading", Token: "token-v1", ID: "v1-node"})
	if err != nil || h == nil || h.ID != "v2-node" || c.Fence <= uint64(fence) {
		t.Fatalf("Enqueue = %+v, holder %+v, %v; want in line behind v2-node", c, h, err)
	}
	if _, err := raw.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Leader == nil || ev.Leader.ID != "v1-node" || ev.Leader.Fence != c.Fence {
		t.Fatalf("watch after the v2 entry was deleted = %s, want v1-node@%d", holder(ev), c.Fence)
	}
	if err := s.Renew(ctx, []election.Claim{c}); err != nil {
		t.Fatalf("Renew of the claim that took over: %v", err)
	}
}

// TestUnversionedValue: a value with no format version under an election's
// range (another program, a build from before format 1) holds the
// election for an unknown writer: Leader fails naming the key, never
// reports it vacant; Claim reports Taken; Watch shows a holder with an
// empty ID; a claim in line takes over once the value is deleted. No
// error quotes the value.
func TestUnversionedValue(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	raw := rawClient(t, srv.addr)
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}, Prefix: "fmt"})
	s := openSession(t, b, 2*time.Second)

	const key = "fmt/foreign%00by-hand"
	fence := putRaw(t, raw, key, `{"id":"intruder","token":"intruder-secret"}`)

	_, err := b.Leader(ctx, "foreign")
	if err == nil || errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("Leader = %v, want an error that is not ErrNoLeader", err)
	}
	if !strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "intruder-secret") {
		t.Fatalf("Leader error %q must name the key and not quote the value", err)
	}
	_, err = s.Claim(ctx, election.ClaimRequest{Name: "foreign", Token: "token-a", ID: "a"})
	if !errors.Is(err, election.ErrTaken) || !strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "intruder-secret") {
		t.Fatalf("Claim = %v, want ErrTaken naming the key, not quoting the value", err)
	}
	events, err := b.Watch(ctx, "foreign")
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Err != nil || ev.Leader == nil || ev.Leader.ID != "" || ev.Leader.Fence != uint64(fence) {
		t.Fatalf("first watch event = %s, want an unknown holder at fence %d", holder(ev), fence)
	}
	c, h, err := s.(election.Queuer).Enqueue(ctx, election.ClaimRequest{Name: "foreign", Token: "token-a", ID: "a"})
	if err != nil || h == nil || h.ID != "" || h.Fence != uint64(fence) {
		t.Fatalf("Enqueue = %+v, holder %+v, %v; want in line behind the unknown writer", c, h, err)
	}
	if _, err := raw.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Leader == nil || ev.Leader.ID != "a" || ev.Leader.Fence != c.Fence {
		t.Fatalf("watch after the foreign value was deleted = %s, want a@%d", holder(ev), c.Fence)
	}
}

// TestRenewReportsForeignChange: a claim whose entry someone else deleted,
// or overwrote without the session's lease, is reported lost by the next
// Renew, the others renewed. Renew reads no keys: it learns of the change
// from the shared watch, which it lets catch up to the keep-alive's
// revision, so a change that completed before Renew started is always
// reported.
func TestRenewReportsForeignChange(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	raw := rawClient(t, srv.addr)
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}, Prefix: "lost"})
	s := openSession(t, b, 2*time.Second)
	x, y, z := claim(t, s, "x", "a"), claim(t, s, "y", "a"), claim(t, s, "z", "a")
	entry := func(name string) string {
		resp, err := raw.Get(ctx, "lost/"+name+"%00", clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("entries of %q: %v, %v", name, resp, err)
		}
		return string(resp.Kvs[0].Key)
	}

	if _, err := raw.Delete(ctx, entry("x")); err != nil {
		t.Fatal(err)
	}
	err := s.Renew(ctx, []election.Claim{x, y, z})
	var notOwner *election.NotOwnerError
	if !errors.As(err, &notOwner) || len(notOwner.Claims) != 1 || notOwner.Claims[0].Name != "x" {
		t.Fatalf("Renew after a foreign delete of x = %v, want NotOwnerError for x only", err)
	}
	// An overwrite without the lease would outlive the session: not ours.
	if _, err := raw.Put(ctx, entry("y"), `{"v":1,"id":"a","token":"token-a-y"}`); err != nil {
		t.Fatal(err)
	}
	err = s.Renew(ctx, []election.Claim{y, z})
	if !errors.As(err, &notOwner) || len(notOwner.Claims) != 1 || notOwner.Claims[0].Name != "y" {
		t.Fatalf("Renew after a foreign overwrite of y = %v, want NotOwnerError for y only", err)
	}
	if err := s.Renew(ctx, []election.Claim{z}); err != nil {
		t.Fatalf("Renew of the untouched claim: %v", err)
	}
}

// watchCtx returns a context for watches that ends with the test.
func watchCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(testCtx(t))
	t.Cleanup(cancel)
	return ctx
}
