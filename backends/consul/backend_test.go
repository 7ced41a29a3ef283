package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

// openSession opens a session of b with TTL ttl, closed when the test ends.
func openSession(t *testing.T, b *Backend, ttl time.Duration) *session {
	t.Helper()
	s, err := b.OpenSession(t.Context(), ttl)
	if err != nil {
		t.Fatalf("OpenSession(%v): %v", ttl, err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s.(*session)
}

func claim(t *testing.T, s election.Session, name, token, id string) election.Claim {
	t.Helper()
	c, err := s.Claim(t.Context(), election.ClaimRequest{Name: name, Token: token, ID: id, Metadata: map[string]string{"id": id}})
	if err != nil {
		t.Fatalf("Claim(%q) by %s: %v", name, id, err)
	}
	return c
}

// rawKey reads an election key with the management client.
func rawKey(t *testing.T, c *api.Client, b *Backend, name string) *api.KVPair {
	t.Helper()
	p, _, err := c.KV().Get(b.Key(name), nil)
	if err != nil {
		t.Fatalf("raw get %q: %v", name, err)
	}
	return p
}

// next receives one watch event or fails after d.
func next(t *testing.T, ch <-chan election.WatchEvent, d time.Duration) election.WatchEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("watch channel closed")
		}
		return ev
	case <-time.After(d):
		t.Fatalf("no watch event within %v", d)
	}
	return election.WatchEvent{}
}

// TestBackend runs the raw-Backend tests against one real agent; each
// subtest uses its own election names.
func TestBackend(t *testing.T) {
	a := startAgent(t, agentOptions{})
	ttl := testMinTTL

	t.Run("Exclusive", func(t *testing.T) {
		b1, b2 := a.backend(t, nil), a.backend(t, nil)
		s1, s2 := openSession(t, b1, ttl), openSession(t, b2, ttl)
		held := claim(t, s1, "exclusive", "token-1", "one")
		for _, s := range []*session{s2, s1} { // another session, and the holder's own
			_, err := s.Claim(t.Context(), election.ClaimRequest{Name: "exclusive", Token: "token-2", ID: "two"})
			var te *election.TakenError
			if !errors.As(err, &te) || te.Holder.ID != "one" || te.Holder.Fence != held.Fence || te.Holder.Metadata["id"] != "one" {
				t.Fatalf("second Claim = %v (%+v), want TakenError naming one with fence %d", err, te, held.Fence)
			}
		}
		l, err := b2.Leader(t.Context(), "exclusive")
		if err != nil || l.ID != "one" || l.Fence != held.Fence || l.Election != "exclusive" {
			t.Fatalf("Leader = %+v, %v", l, err)
		}
		if strings.Contains(fmt.Sprintf("%+v", l), "token-1") {
			t.Fatalf("Leader exposes the owner token: %+v", l)
		}
		if _, err := b2.Leader(t.Context(), "nobody-here"); !errors.Is(err, election.ErrNoLeader) {
			t.Fatalf("Leader of a vacant election = %v, want ErrNoLeader", err)
		}
	})

	t.Run("RenewChecksOwnership", func(t *testing.T) {
		b := a.backend(t, nil)
		s := openSession(t, b, ttl)
		for _, n := range []int{3, maxTxnOps + 6} { // one transaction; the prefix listing beyond 64
			var claims []election.Claim
			for i := range n {
				claims = append(claims, claim(t, s, fmt.Sprintf("renew-%d-%02d", n, i), fmt.Sprintf("tok-%d-%d", n, i), "r"))
			}
			if err := s.Renew(t.Context(), claims); err != nil {
				t.Fatalf("Renew of %d held claims = %v", n, err)
			}
			forged := claims[n-1]
			forged.Token = "forged"
			gone := election.Claim{Name: fmt.Sprintf("renew-%d-never", n), Token: "x"}
			err := s.Renew(t.Context(), append(claims[:n-1:n-1], forged, gone))
			var no *election.NotOwnerError
			if !errors.As(err, &no) || len(no.Claims) != 2 || no.Claims[0] != forged || no.Claims[1] != gone {
				t.Fatalf("Renew with a forged and an unheld claim = %v, want NotOwnerError listing exactly those two", err)
			}
		}
		// Renewing keeps claims beyond the TTL.
		c := claim(t, s, "renew-long", "tok-long", "r")
		for range 6 {
			time.Sleep(ttl / 2)
			if err := s.Renew(t.Context(), []election.Claim{c}); err != nil {
				t.Fatalf("Renew = %v", err)
			}
		}
		if l, err := b.Leader(t.Context(), "renew-long"); err != nil || l.Fence != c.Fence {
			t.Fatalf("after 3 TTLs of renewals Leader = %+v, %v", l, err)
		}
	})

	t.Run("WrongTokenChangesNothing", func(t *testing.T) {
		b1, b2 := a.backend(t, nil), a.backend(t, nil)
		s1, s2 := openSession(t, b1, ttl), openSession(t, b2, ttl)
		held := claim(t, s1, "wrong-token", "right", "owner")
		raw := a.client(t)
		before := rawKey(t, raw, b1, "wrong-token")
		forged := election.Claim{Name: "wrong-token", Token: "wrong", Fence: held.Fence}
		for _, s := range []*session{s1, s2} {
			if err := s.Release(t.Context(), forged); !errors.Is(err, election.ErrNotOwner) {
				t.Fatalf("Release with a wrong token = %v, want ErrNotOwner", err)
			}
			if err := s.Renew(t.Context(), []election.Claim{forged}); !errors.Is(err, election.ErrNotOwner) {
				t.Fatalf("Renew with a wrong token = %v, want ErrNotOwner", err)
			}
		}
		// The right token through a session that does not hold the key is
		// still not the holder's session: Renew refuses it.
		if err := s2.Renew(t.Context(), []election.Claim{held}); !errors.Is(err, election.ErrNotOwner) {
			t.Fatalf("Renew of a claim held by another session = %v, want ErrNotOwner", err)
		}
		after := rawKey(t, raw, b1, "wrong-token")
		if after == nil || after.ModifyIndex != before.ModifyIndex || after.Session != before.Session || string(after.Value) != string(before.Value) {
			t.Fatalf("key changed by wrong-token calls: before %+v after %+v", before, after)
		}
		if err := s1.Release(t.Context(), held); err != nil {
			t.Fatalf("owner's Release = %v", err)
		}
		if err := s1.Release(t.Context(), held); !errors.Is(err, election.ErrNotOwner) {
			t.Fatalf("second Release = %v, want ErrNotOwner", err)
		}
	})

	t.Run("Watch", func(t *testing.T) {
		owner := a.backend(t, nil)
		watcher := a.backend(t, func(c *Config) { c.WatchWait = 30 * time.Second })
		s := openSession(t, owner, ttl)
		ctx, cancel := context.WithCancel(t.Context())
		ch, err := watcher.Watch(ctx, "watched")
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		if ev := next(t, ch, 10*time.Second); ev.Leader != nil || ev.Err != nil {
			t.Fatalf("first event = %+v, want the vacant state", ev)
		}
		c := claim(t, s, "watched", "tok", "w1")
		if ev := next(t, ch, 10*time.Second); ev.Leader == nil || ev.Leader.ID != "w1" || ev.Leader.Fence != c.Fence {
			t.Fatalf("event after claim = %+v, want w1 with fence %d", ev, c.Fence)
		}
		if err := s.Release(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		released := time.Now()
		if ev := next(t, ch, 10*time.Second); ev.Leader != nil || ev.Err != nil {
			t.Fatalf("event after release = %+v, want vacant", ev)
		}
		// The blocking query waits 30s: an event this soon came from the
		// query returning on the change, not from a timeout.
		if took := time.Since(released); took > 10*time.Second {
			t.Fatalf("release seen after %v", took)
		} else {
			t.Logf("release seen by the watcher %v after Release returned", took.Round(time.Millisecond))
		}
		cancel()
		select {
		case ev, ok := <-ch:
			if ok {
				t.Fatalf("event %+v after cancel, want the channel closed", ev)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watch channel not closed after cancel")
		}
	})

	t.Run("Fences", func(t *testing.T) {
		// No lock-delay: the key of a destroyed session is claimed at once.
		b := a.backend(t, func(c *Config) { c.LockDelay = NoLockDelay })
		raw := a.client(t)
		s1, s2 := openSession(t, b, ttl), openSession(t, b, ttl)
		var fences []uint64
		step := func(what string, c election.Claim) {
			t.Helper()
			p := rawKey(t, raw, b, "fenced")
			if c.Fence != p.ModifyIndex {
				t.Fatalf("%s: fence %d is not the key's ModifyIndex %d", what, c.Fence, p.ModifyIndex)
			}
			if n := len(fences); n > 0 && c.Fence <= fences[n-1] {
				t.Fatalf("%s: fence %d not above %d", what, c.Fence, fences[n-1])
			}
			fences = append(fences, c.Fence)
			t.Logf("%s: fence %d, LockIndex %d", what, c.Fence, p.LockIndex)
		}
		c := claim(t, s1, "fenced", "t1", "one")
		step("first claim", c)
		if err := s1.Release(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		c = claim(t, s2, "fenced", "t2", "two")
		step("claim after release (key deleted and re-created)", c)
		if p := rawKey(t, raw, b, "fenced"); p.LockIndex != 1 {
			t.Fatalf("LockIndex %d after re-creation: expected Consul to reset it to 1", p.LockIndex)
		}
		if err := s2.Close(t.Context()); err != nil { // behavior delete
			t.Fatal(err)
		}
		c = claim(t, s1, "fenced", "t3", "one")
		step("claim after the holder's session was destroyed", c)
		if err := s1.Release(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		// A key left present but unlocked (a foreign write) is claimed
		// through the check-index path.
		if _, err := raw.KV().Put(&api.KVPair{Key: b.Key("fenced"), Value: []byte(`{"v":1}`)}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Leader(t.Context(), "fenced"); !errors.Is(err, election.ErrNoLeader) {
			t.Fatalf("Leader of an unlocked key = %v, want ErrNoLeader", err)
		}
		c = claim(t, s1, "fenced", "t4", "one")
		step("claim of a present, unlocked key", c)
		// LockIndex, in contrast, went 1, 1, 1, 1: only ModifyIndex can fence.
	})

	t.Run("PrefixIsolation", func(t *testing.T) {
		outer := a.backend(t, func(c *Config) { c.Prefix = "iso" })
		inner := a.backend(t, func(c *Config) { c.Prefix = "iso/b" })
		so, si := openSession(t, outer, ttl), openSession(t, inner, ttl)
		co := claim(t, so, "b/c", "t-outer", "outer") // naive keys: iso/b/c
		ci := claim(t, si, "c", "t-inner", "inner")   // naive keys: iso/b/c
		if outer.Key("b/c") == inner.Key("c") {
			t.Fatalf("both map to %q", outer.Key("c"))
		}
		lo, err1 := outer.Leader(t.Context(), "b/c")
		li, err2 := inner.Leader(t.Context(), "c")
		if err1 != nil || err2 != nil || lo.ID != "outer" || li.ID != "inner" || lo.Fence != co.Fence || li.Fence != ci.Fence {
			t.Fatalf("leaders %+v (%v), %+v (%v)", lo, err1, li, err2)
		}
		if _, err := inner.Leader(t.Context(), "b/c"); !errors.Is(err, election.ErrNoLeader) {
			t.Fatalf("inner prefix sees outer's election: %v", err)
		}
	})

	t.Run("AwkwardNames", func(t *testing.T) {
		b := a.backend(t, nil)
		s := openSession(t, b, ttl)
		for i, name := range names {
			c := claim(t, s, name, fmt.Sprintf("tok-%d", i), "n")
			if l, err := b.Leader(t.Context(), name); err != nil || l.Fence != c.Fence || l.Election != name {
				t.Fatalf("Leader(%q) = %+v, %v", name, l, err)
			}
			if err := s.Release(t.Context(), c); err != nil {
				t.Fatalf("Release(%q) = %v", name, err)
			}
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		b := a.backend(t, nil)
		for _, d := range []time.Duration{ttl / 2, 0, -time.Second, MaxTTL + time.Second} {
			if _, err := b.OpenSession(t.Context(), d); !errors.Is(err, election.ErrInvalidArgument) {
				t.Errorf("OpenSession(%v) = %v, want ErrInvalidArgument", d, err)
			}
		}
		// A backend told a lower minimum than the agent's: the agent refuses.
		liar := a.backend(t, func(c *Config) { c.MinTTL = 100 * time.Millisecond })
		if _, err := liar.OpenSession(t.Context(), 500*time.Millisecond); !errors.Is(err, election.ErrInvalidArgument) {
			t.Errorf("OpenSession below the agent's session_ttl_min = %v, want ErrInvalidArgument", err)
		}
		s := openSession(t, b, ttl)
		for _, req := range []election.ClaimRequest{
			{Name: "", Token: "t"}, {Name: "bad\xff", Token: "t"}, {Name: "ok", Token: ""},
			{Name: "big", Token: "t", Metadata: map[string]string{"blob": strings.Repeat("x", 600<<10)}},
		} {
			if _, err := s.Claim(t.Context(), req); !errors.Is(err, election.ErrInvalidArgument) {
				t.Errorf("Claim(%.20q, token %q, %d bytes of metadata) = %v, want ErrInvalidArgument",
					req.Name, req.Token, len(req.Metadata["blob"]), err)
			}
		}
		if _, err := b.Leader(t.Context(), ""); !errors.Is(err, election.ErrInvalidArgument) {
			t.Errorf("Leader(\"\") = %v", err)
		}
		if _, err := b.Watch(t.Context(), "ctl\x01"); !errors.Is(err, election.ErrInvalidArgument) {
			t.Errorf("Watch(ctl) = %v", err)
		}
	})

	t.Run("SessionClose", func(t *testing.T) {
		b := a.backend(t, nil)
		s := openSession(t, b, ttl)
		c := claim(t, s, "closing", "t", "c")
		for range 2 {
			if err := s.Close(t.Context()); err != nil {
				t.Fatalf("Close = %v", err)
			}
		}
		if _, err := b.Leader(t.Context(), "closing"); !errors.Is(err, election.ErrNoLeader) {
			t.Fatalf("after Close, Leader = %v, want ErrNoLeader (behavior delete)", err)
		}
		if err := s.Renew(t.Context(), []election.Claim{c}); !errors.Is(err, election.ErrSessionExpired) {
			t.Fatalf("Renew after Close = %v, want ErrSessionExpired", err)
		}
		if _, err := s.Claim(t.Context(), election.ClaimRequest{Name: "closing", Token: "u"}); !errors.Is(err, election.ErrSessionExpired) {
			t.Fatalf("Claim after Close = %v, want ErrSessionExpired", err)
		}
	})

	t.Run("LockDelay", func(t *testing.T) {
		raw := a.client(t)
		b := a.backend(t, nil)
		s := openSession(t, b, ttl)
		info, _, err := raw.Session().Info(s.id, nil)
		if err != nil || info == nil {
			t.Fatalf("session info: %+v, %v", info, err)
		}
		// The default: a lock-delay of the TTL, and a Consul TTL of half
		// of it, but not below MinTTL (here the TTL itself).
		if info.LockDelay != ttl || info.Behavior != api.SessionBehaviorDelete || len(info.NodeChecks) != 0 || info.TTL != ttl.String() {
			t.Fatalf("session = %+v, want lock-delay %v, behavior delete, no checks, TTL %v", info, ttl, ttl)
		}
		for _, c := range []struct {
			lockDelay, ttl, wantTTL, wantDelay time.Duration
		}{
			{0, 4 * ttl, 2 * ttl, 4 * ttl},
			{0, 2 * MaxLockDelay, 2 * MaxLockDelay, MaxLockDelay}, // the cap: no halving
			{NoLockDelay, 4 * ttl, 4 * ttl, 0},
			{ttl, 4 * ttl, 4 * ttl, ttl},         // below the TTL: Consul's TTL as asked
			{8 * ttl, 4 * ttl, 2 * ttl, 8 * ttl}, // at least the TTL: halved
			{0, 3*ttl + time.Millisecond, 1500 * time.Millisecond, 3*ttl + time.Millisecond},
		} {
			bc := a.backend(t, func(cfg *Config) { cfg.LockDelay = c.lockDelay })
			sc := openSession(t, bc, c.ttl)
			info, _, err := raw.Session().Info(sc.id, nil)
			if err != nil || info == nil || info.TTL != c.wantTTL.String() || info.LockDelay != c.wantDelay {
				t.Errorf("LockDelay %v, TTL %v: session %+v, %v; want Consul TTL %v, lock-delay %v", c.lockDelay, c.ttl, info, err, c.wantTTL, c.wantDelay)
			}
			if !sc.EndsClaims() { // Close deletes the claims' keys before the destroy
				t.Errorf("LockDelay %v: EndsClaims = false, want true", c.lockDelay)
			}
		}
		// With a lock-delay, an operator's destroy blocks claims for its
		// duration, and the claim error says why.
		delay := 2 * time.Second
		bd := a.backend(t, func(c *Config) { c.LockDelay = delay })
		sd := openSession(t, bd, ttl)
		if info, _, err := raw.Session().Info(sd.id, nil); err != nil || info.LockDelay != delay {
			t.Fatalf("session lock-delay = %+v, %v; want %v", info, err, delay)
		}
		claim(t, sd, "delayed", "t1", "first")
		if _, err := raw.Session().Destroy(sd.id, nil); err != nil {
			t.Fatal(err)
		}
		destroyed := time.Now()
		s2 := openSession(t, bd, 10*time.Second) // not renewed while it retries
		_, err = s2.Claim(t.Context(), election.ClaimRequest{Name: "delayed", Token: "t2", ID: "second"})
		var taken *election.TakenError
		if !errors.As(err, &taken) || taken.Holder.ID != "" || taken.ExpiresIn != delay || !strings.Contains(err.Error(), "lock-delay") {
			t.Fatalf("Claim during lock-delay = %v, want a TakenError with no holder, ExpiresIn %v, naming the lock-delay", err, delay)
		}
		for {
			_, err := s2.Claim(t.Context(), election.ClaimRequest{Name: "delayed", Token: "t2", ID: "second"})
			if err == nil {
				break
			}
			if time.Since(destroyed) > delay+5*time.Second {
				t.Fatalf("Claim still failing %v after the destroy: %v", time.Since(destroyed), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if took := time.Since(destroyed); took < delay {
			t.Fatalf("claimed %v after the destroy, inside the %v lock-delay", took, delay)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		// No lock-delay: the Consul TTL is the one asked for (not halved),
		// and a claim by the expired session meets no lock-delay first.
		noDelay := func(c *Config) { c.LockDelay = NoLockDelay }
		for _, sessionTTL := range []time.Duration{ttl, 2 * ttl} {
			owner, watcher := a.backend(t, noDelay), a.backend(t, nil)
			s := openSession(t, owner, sessionTTL)
			name := fmt.Sprintf("expiry-%v", sessionTTL)
			c := claim(t, s, name, "t", "x")
			ch, err := watcher.Watch(t.Context(), name)
			if err != nil {
				t.Fatal(err)
			}
			next(t, ch, 10*time.Second) // the holder
			renewSent := time.Now()
			if err := s.Renew(t.Context(), []election.Claim{c}); err != nil {
				t.Fatal(err)
			}
			// No more renewals: Consul invalidates the session, deletes the
			// key and the watch reports the vacancy.
			ev := next(t, ch, 2*sessionTTL+10*time.Second)
			freed := time.Since(renewSent)
			if ev.Leader != nil || ev.Err != nil {
				t.Fatalf("event = %+v, want vacant", ev)
			}
			t.Logf("TTL %v: key freed and seen %v after the last renewal was sent (%.2f×TTL)",
				sessionTTL, freed.Round(time.Millisecond), float64(freed)/float64(sessionTTL))
			if freed < sessionTTL {
				t.Fatalf("claim freed %v after the last renewal, before the TTL %v", freed, sessionTTL)
			}
			if err := s.Renew(t.Context(), nil); !errors.Is(err, election.ErrSessionExpired) {
				t.Fatalf("Renew of an invalidated session = %v, want ErrSessionExpired", err)
			}
			if _, err := s.Claim(t.Context(), election.ClaimRequest{Name: name, Token: "u"}); !errors.Is(err, election.ErrSessionExpired) {
				t.Fatalf("Claim with an invalidated session = %v, want ErrSessionExpired", err)
			}
		}
	})

	t.Run("BackendClose", func(t *testing.T) {
		b, err := New(Config{Address: a.addr, MinTTL: testMinTTL})
		if err != nil {
			t.Fatal(err)
		}
		ch, err := b.Watch(context.Background(), "closing-backend")
		if err != nil {
			t.Fatal(err)
		}
		next(t, ch, 10*time.Second)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if _, ok := <-ch; ok {
			t.Fatalf("watch still open after Close")
		}
		if _, err := b.Leader(t.Context(), "x"); !errors.Is(err, election.ErrUnavailable) {
			t.Fatalf("Leader after Close = %v", err)
		}
		if _, err := b.OpenSession(t.Context(), ttl); !errors.Is(err, election.ErrUnavailable) {
			t.Fatalf("OpenSession after Close = %v", err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
	})
}
