package etcd_test

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
)

// TestObserverCredential: the trust model of the README. A user whose
// role may only read the prefix's range follows the leader (Leader, Watch)
// but cannot claim, release another's claim (although the owner token is
// readable in the entry's value), delete or overwrite the entry, or keep
// alive or revoke the holder's lease (etcd checks write permission on
// every key attached to a lease for both).
func TestObserverCredential(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	enableAuth(ctx, t, rawClient(t, srv.addr),
		authUser{"alice", "elector", clientv3.PermissionType(clientv3.PermReadWrite)},
		authUser{"olive", "observer", clientv3.PermissionType(clientv3.PermRead)})

	alice := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}, Prefix: "app", Username: "alice", Password: "alice-password"})
	as := openSession(t, alice, 5*time.Second)
	held := claim(t, as, "acl", "alice")

	olive := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}, Prefix: "app", Username: "olive", Password: "olive-password"})
	if l, err := olive.Leader(ctx, "acl"); err != nil || l.ID != "alice" || l.Fence != held.Fence {
		t.Fatalf("Leader as the observer = %+v, %v; want alice at fence %d", l, err, held.Fence)
	}
	events, err := olive.Watch(ctx, "acl")
	if err != nil {
		t.Fatalf("Watch as the observer: %v", err)
	}
	if ev := nextEvent(t, events); ev.Err != nil || ev.Leader == nil || ev.Leader.ID != "alice" {
		t.Fatalf("first watch event as the observer = %s, want alice", holder(ev))
	}

	// A lease needs no permission; a claim does.
	obs := openSession(t, olive, 5*time.Second)
	if _, err := obs.Claim(ctx, election.ClaimRequest{Name: "free", Token: "token-olive", ID: "olive"}); !errors.Is(err, election.ErrInvalidArgument) || !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("Claim of a vacant election as the observer = %v, want ErrInvalidArgument wrapping permission denied", err)
	}
	if err := obs.Release(ctx, held); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("Release of alice's claim (token known) as the observer = %v, want permission denied", err)
	}
	if err := obs.Renew(ctx, []election.Claim{held}); !errors.As(err, new(*election.NotOwnerError)) {
		t.Errorf("Renew of alice's claim through the observer's session = %v, want a NotOwnerError", err)
	}

	raw, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.addr}, Username: "olive", Password: "olive-password",
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	resp, err := raw.Get(ctx, "app/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw read of the prefix as the observer: %v, %d keys; want alice's entry", err, len(resp.Kvs))
	}
	entry := resp.Kvs[0]
	if _, err := raw.Delete(ctx, string(entry.Key)); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("raw delete of alice's entry as the observer = %v, want permission denied", err)
	}
	if _, err := raw.Put(ctx, string(entry.Key), "x"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("raw overwrite of alice's entry as the observer = %v, want permission denied", err)
	}
	if _, err := raw.Revoke(ctx, clientv3.LeaseID(entry.Lease)); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("revoke of alice's lease as the observer = %v, want permission denied", err)
	}
	// etcd allows a keep-alive only to a user who may write every key
	// attached to the lease.
	if _, err := raw.KeepAliveOnce(ctx, clientv3.LeaseID(entry.Lease)); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("keep-alive of alice's lease as the observer = %v, want permission denied", err)
	}
	if l, err := olive.Leader(ctx, "acl"); err != nil || l.ID != "alice" || l.Fence != held.Fence {
		t.Fatalf("Leader after the observer's attempts = %+v, %v; want alice at fence %d still", l, err, held.Fence)
	}
	if err := as.Renew(ctx, []election.Claim{held}); err != nil {
		t.Fatalf("alice's renewal after the observer's attempts: %v", err)
	}
}
