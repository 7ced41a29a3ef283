package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
)

// TestClaimExclusive: of two sessions on two clients, only the first claim
// wins; the second gets a *TakenError naming the holder, without its token.
func TestClaimExclusive(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	a := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}})
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}})
	sa, sb := openSession(t, a, time.Second), openSession(t, b, time.Second)

	meta := map[string]string{"addr": "10.0.0.1:80"}
	held, err := sa.Claim(ctx, election.ClaimRequest{Name: "exclusive", Token: "secret-token-a", ID: "a", Metadata: meta})
	if err != nil {
		t.Fatalf("first Claim: %v", err)
	}
	if held.Fence == 0 || held.Name != "exclusive" || held.Token != "secret-token-a" {
		t.Fatalf("Claim = %+v", held)
	}
	_, err = sb.Claim(ctx, election.ClaimRequest{Name: "exclusive", Token: "secret-token-b", ID: "b"})
	var taken *election.TakenError
	if !errors.As(err, &taken) || !errors.Is(err, election.ErrTaken) {
		t.Fatalf("second Claim = %v, want *TakenError", err)
	}
	if taken.Holder.ID != "a" || taken.Holder.Fence != held.Fence || taken.Holder.Metadata["addr"] != "10.0.0.1:80" {
		t.Fatalf("TakenError holder = %+v, want a with fence %d and metadata", taken.Holder, held.Fence)
	}
	// A retry with the same token (its first answer lost) is the same claim.
	again, err := sa.Claim(ctx, election.ClaimRequest{Name: "exclusive", Token: "secret-token-a", ID: "a", Metadata: meta})
	if err != nil || again != held {
		t.Fatalf("Claim retried with the same token = %+v, %v; want %+v", again, err, held)
	}
	if _, err := sb.Claim(ctx, election.ClaimRequest{Name: "exclusive", Token: "secret-token-a", ID: "b"}); !errors.Is(err, election.ErrTaken) {
		t.Fatalf("the same token from another session = %v, want ErrTaken", err)
	}
	if err := sa.Renew(ctx, []election.Claim{held}); err != nil {
		t.Fatalf("Renew after the retried claim: %v", err)
	}
	// The same session cannot claim twice with another token.
	if _, err := sa.Claim(ctx, election.ClaimRequest{Name: "exclusive", Token: "other", ID: "a"}); !errors.Is(err, election.ErrTaken) {
		t.Fatalf("re-Claim by the holder's session = %v, want ErrTaken", err)
	}
	l, err := b.Leader(ctx, "exclusive")
	if err != nil || l.ID != "a" || l.Fence != held.Fence || l.Election != "exclusive" {
		t.Fatalf("Leader = %+v, %v", l, err)
	}
	if s := fmt.Sprintf("%+v %v", l, err); strings.Contains(s, "secret-token") {
		t.Fatalf("the owner token leaked into Leader or an error: %s", s)
	}
	if _, err := b.Leader(ctx, "vacant"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("Leader of a vacant election = %v, want ErrNoLeader", err)
	}
}

// TestRenewKeepsClaims: renewing well within the TTL keeps a claim for many
// TTLs; the lease etcd reports keeps being extended.
func TestRenewKeepsClaims(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}})
	s := openSession(t, b, 2*time.Second)
	held := claim(t, s, "renewed", "a")
	deadline := time.Now().Add(3 * s.TTL())
	for time.Now().Before(deadline) {
		if err := s.Renew(ctx, []election.Claim{held}); err != nil {
			t.Fatalf("Renew: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	l, err := b.Leader(ctx, "renewed")
	if err != nil || l.Fence != held.Fence {
		t.Fatalf("after 3 TTLs of renewals, Leader = %+v, %v; want fence %d", l, err, held.Fence)
	}
}

// TestWrongTokenNotOwner: renew and release with a token the store does not
// hold fail with ErrNotOwner and change nothing, whichever session sends
// them.
func TestWrongTokenNotOwner(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}})
	sa, sb := openSession(t, b, time.Second), openSession(t, b, time.Second)
	held := claim(t, sa, "tokens", "a")
	other := claim(t, sa, "other", "a")

	forgeries := map[string]election.Claim{
		"wrong token":           {Name: "tokens", Token: "forged", Fence: held.Fence},
		"wrong fence":           {Name: "tokens", Token: held.Token, Fence: held.Fence + 1},
		"token of another name": {Name: "tokens", Token: other.Token, Fence: other.Fence},
	}
	for what, forged := range forgeries {
		for _, s := range []election.Session{sa, sb} {
			var notOwner *election.NotOwnerError
			err := s.Renew(ctx, []election.Claim{held, forged})
			if s == sb {
				// sb holds nothing: both claims are reported.
				if !errors.As(err, &notOwner) || len(notOwner.Claims) != 2 {
					t.Errorf("%s: Renew on another session = %v, want NotOwnerError for both claims", what, err)
				}
			} else if !errors.As(err, &notOwner) || len(notOwner.Claims) != 1 || notOwner.Claims[0] != forged {
				t.Errorf("%s: Renew = %v, want NotOwnerError for the forged claim only", what, err)
			}
			if err := s.Release(ctx, forged); !errors.Is(err, election.ErrNotOwner) {
				t.Errorf("%s: Release = %v, want ErrNotOwner", what, err)
			}
		}
	}
	l, err := b.Leader(ctx, "tokens")
	if err != nil || l.ID != "a" || l.Fence != held.Fence {
		t.Fatalf("forged renew/release changed the election: %+v, %v", l, err)
	}
	if err := sa.Renew(ctx, []election.Claim{held, other}); err != nil {
		t.Fatalf("owner's Renew after forgeries: %v", err)
	}
	if err := sa.Release(ctx, held); err != nil {
		t.Fatalf("owner's Release: %v", err)
	}
	if err := sa.Release(ctx, held); !errors.Is(err, election.ErrNotOwner) {
		t.Fatalf("second Release = %v, want ErrNotOwner", err)
	}
	var notOwner *election.NotOwnerError
	if err := sa.Renew(ctx, []election.Claim{held, other}); !errors.As(err, &notOwner) || len(notOwner.Claims) != 1 || notOwner.Claims[0] != held {
		t.Fatalf("Renew of a released claim = %v, want NotOwnerError for it alone", err)
	}
	// A claim of unknown outcome is released by token alone (fence 0).
	if err := sa.Release(ctx, election.Claim{Name: other.Name, Token: other.Token}); err != nil {
		t.Fatalf("Release by token only: %v", err)
	}
}

// TestSessionLifecycle: Close revokes the lease (its claims vanish at once)
// and is idempotent; a closed or expired session reports ErrSessionExpired.
func TestSessionLifecycle(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	b := newBackend(t, etcd.Config{Endpoints: []string{srv.addr}})
	s := openSession(t, b, time.Second)
	held := claim(t, s, "life", "a")
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.Leader(ctx, "life"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("after Close, Leader = %v, want ErrNoLeader (lease revoked)", err)
	}
	if err := s.Renew(ctx, []election.Claim{held}); !errors.Is(err, election.ErrSessionExpired) {
		t.Fatalf("Renew after Close = %v, want ErrSessionExpired", err)
	}
	if _, err := s.Claim(ctx, election.ClaimRequest{Name: "life", Token: "t", ID: "a"}); !errors.Is(err, election.ErrSessionExpired) {
		t.Fatalf("Claim after Close = %v, want ErrSessionExpired", err)
	}

	// A lease that expired on the server.
	expiring := openSession(t, b, time.Second)
	claim(t, expiring, "expiring", "b")
	waitVacant(t, b, "expiring", 30*time.Second)
	if err := expiring.Renew(ctx, nil); !errors.Is(err, election.ErrSessionExpired) || !errors.Is(err, election.ErrLost) {
		t.Fatalf("Renew of an expired lease = %v, want ErrSessionExpired", err)
	}
	_, err := expiring.Claim(ctx, election.ClaimRequest{Name: "expiring", Token: "t", ID: "b"})
	if !errors.Is(err, election.ErrSessionExpired) {
		t.Fatalf("Claim on an expired lease = %v, want ErrSessionExpired", err)
	}
}

// TestClosedBackend: after Backend.Close every operation fails at once
// with ErrUnavailable instead of retrying on the closed client.
func TestClosedBackend(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	b, err := etcd.New(etcd.Config{Endpoints: []string{srv.addr}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.OpenSession(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	held := claim(t, s, "closed", "a")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	start := time.Now()
	_, openErr := b.OpenSession(ctx, time.Second)
	_, leaderErr := b.Leader(ctx, "closed")
	_, watchErr := b.Watch(ctx, "closed")
	_, claimErr := s.Claim(ctx, election.ClaimRequest{Name: "other", Token: "t", ID: "a"})
	for what, err := range map[string]error{
		"OpenSession": openErr, "Leader": leaderErr, "Watch": watchErr, "Claim": claimErr,
		"Renew": s.Renew(ctx, []election.Claim{held}), "Release": s.Release(ctx, held), "Close": s.Close(ctx),
	} {
		if !errors.Is(err, election.ErrUnavailable) {
			t.Errorf("%s after Backend.Close = %v, want ErrUnavailable", what, err)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("operations on a closed Backend took %v", took)
	}
}

// TestRenewRoundTrips: Renew costs the same one RPC (the keep-alive) for 1
// claim and for 200, beyond etcd's 128-operation transaction limit: no
// read of the lease's keys (the shared watch vouches for the claims), also
// when etcd's revision moved under another prefix.
func TestRenewRoundTrips(t *testing.T) {
	srv := startEtcd(t, etcdOptions{})
	ctx := testCtx(t)
	var calls atomic.Int64
	count := []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			calls.Add(1)
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			calls.Add(1)
			return streamer(ctx, desc, cc, method, opts...)
		}),
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.addr}, DialOptions: count, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	b := newBackend(t, etcd.Config{Client: client})
	s := openSession(t, b, 2*time.Second)
	var claims []election.Claim
	for i := range 200 {
		claims = append(claims, claim(t, s, fmt.Sprintf("batch-%03d", i), "a"))
	}
	raw := rawClient(t, srv.addr)
	for _, n := range []int{1, 200} {
		// A write outside the prefix moves etcd's revision past anything
		// the shared watch has seen: Renew asks it for a progress
		// notification (a message on its stream, not a call) instead of
		// listing the lease's keys.
		if _, err := raw.Put(ctx, "elsewhere", fmt.Sprint(n)); err != nil {
			t.Fatal(err)
		}
		before := calls.Load()
		if err := s.Renew(ctx, claims[:n]); err != nil {
			t.Fatalf("Renew of %d claims: %v", n, err)
		}
		if got := calls.Load() - before; got != 1 {
			t.Errorf("Renew of %d claims made %d RPCs, want 1", n, got)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Get(ctx, "still-open"); err != nil {
		t.Fatalf("Backend.Close closed the caller's client: %v", err)
	}
}

// waitVacant waits until the election has no leader.
func waitVacant(t *testing.T, b election.Backend, name string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, err := b.Leader(testCtx(t), name)
		if errors.Is(err, election.ErrNoLeader) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q still held after %v: %v", name, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
