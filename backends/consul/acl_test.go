package consul

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

// TestACL runs against an agent with ACLs enabled and default policy deny.
func TestACL(t *testing.T) {
	a := startAgent(t, agentOptions{acl: true})
	raw := a.client(t)
	ttl := testMinTTL

	t.Run("WrongToken", func(t *testing.T) {
		// No token must mean the anonymous token, not the environment's.
		clearConsulEnv(t)
		for _, token := range []string{"00000000-0000-4000-8000-000000000000", ""} { // unknown; anonymous
			b := a.backend(t, func(c *Config) { c.Token = token })
			_, openErr := b.OpenSession(t.Context(), ttl)
			if !errors.Is(openErr, election.ErrInvalidArgument) || !strings.Contains(openErr.Error(), "ACL token rejected") {
				t.Fatalf("token %q: OpenSession = %v, want ErrInvalidArgument saying the token was rejected", token, openErr)
			}
			if _, err := b.Leader(t.Context(), "acl"); !errors.Is(err, election.ErrInvalidArgument) {
				t.Fatalf("token %q: Leader = %v, want ErrInvalidArgument", token, err)
			}
			ch, err := b.Watch(t.Context(), "acl")
			if err != nil {
				t.Fatal(err)
			}
			ev := next(t, ch, 10*time.Second)
			if !errors.Is(ev.Err, election.ErrInvalidArgument) {
				t.Fatalf("token %q: watch event = %+v, want Err wrapping ErrInvalidArgument", token, ev)
			}
			if _, ok := <-ch; ok {
				t.Fatalf("watch not closed after its error event")
			}
			t.Logf("token %q: %v", token, openErr)
		}
	})

	policy := func(t *testing.T, name, rules string) *api.ACLPolicy {
		p, _, err := raw.ACL().PolicyCreate(&api.ACLPolicy{Name: name, Rules: rules}, nil)
		if err != nil {
			t.Fatalf("create policy: %v", err)
		}
		return p
	}
	token := func(t *testing.T, p *api.ACLPolicy) string {
		tok, _, err := raw.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: p.ID}}}, nil)
		if err != nil {
			t.Fatalf("create token: %v", err)
		}
		return tok.SecretID
	}
	// The grants the README documents for a candidate of prefix "acl":
	// write on the prefix, write on the session node (to register it) and
	// session write on it.
	candidateRules := `key_prefix "acl/" { policy = "write" }
node "acl-sessions" { policy = "write" }
session "acl-sessions" { policy = "write" }`
	writer := token(t, policy(t, "candidate", candidateRules))
	// An observer: read on the prefix, nothing else.
	reader := token(t, policy(t, "observer", `key_prefix "acl/" { policy = "read" }`))

	t.Run("LeastPrivilege", func(t *testing.T) {
		bw := a.backend(t, func(c *Config) { c.Token, c.Prefix = writer, "acl" })
		if got := bw.SessionNode(); got != "acl-sessions" {
			t.Fatalf("SessionNode = %q, want acl-sessions", got)
		}
		sw := openSession(t, bw, ttl)
		c := claim(t, sw, "scoped", "t", "writer")
		if err := sw.Renew(t.Context(), []election.Claim{c}); err != nil {
			t.Fatalf("Renew = %v", err)
		}
		if err := sw.Release(t.Context(), c); err != nil {
			t.Fatalf("Release = %v", err)
		}
		// Once the session node exists, node write is not needed: an
		// operator who registers it can keep candidates from deregistering
		// it.
		noNode := token(t, policy(t, "candidate-without-node", `key_prefix "acl/" { policy = "write" }
session "acl-sessions" { policy = "write" }`))
		bn := a.backend(t, func(c *Config) { c.Token, c.Prefix = noNode, "acl" })
		claim(t, openSession(t, bn, ttl), "scoped", "t2", "no-node-grant")
		// Outside its prefix the candidate is refused: its session node
		// is not granted, nor are the keys.
		bo := a.backend(t, func(c *Config) { c.Token, c.Prefix = writer, "elsewhere" })
		if _, err := bo.OpenSession(t.Context(), ttl); !errors.Is(err, election.ErrInvalidArgument) {
			t.Fatalf("OpenSession outside the granted prefix = %v, want ErrInvalidArgument", err)
		}
		so := &session{b: bo, id: sw.id, ttl: ttl} // its own session, used under another prefix
		if _, err := so.Claim(t.Context(), election.ClaimRequest{Name: "x", Token: "t"}); !errors.Is(err, election.ErrInvalidArgument) {
			t.Fatalf("Claim outside the granted prefix = %v, want ErrInvalidArgument", err)
		}
	})

	t.Run("Observer", func(t *testing.T) {
		// An observer follows the leader but can neither claim, renew nor
		// release, not even with what it can read: the holder's session
		// ID and owner token are in the key.
		bw := a.backend(t, func(c *Config) { c.Token, c.Prefix = writer, "acl" })
		br := a.backend(t, func(c *Config) { c.Token, c.Prefix = reader, "acl" })
		sw := openSession(t, bw, ttl)
		held := claim(t, sw, "observed", "secret-token", "writer")

		if l, err := br.Leader(t.Context(), "observed"); err != nil || l.ID != "writer" || l.Fence != held.Fence {
			t.Fatalf("observer's Leader = %+v, %v; want writer at fence %d", l, err, held.Fence)
		}
		ch, err := br.Watch(t.Context(), "observed")
		if err != nil {
			t.Fatalf("observer's Watch: %v", err)
		}
		if ev := next(t, ch, 10*time.Second); ev.Err != nil || ev.Leader == nil || ev.Leader.ID != "writer" {
			t.Fatalf("observer's first watch event = %+v, want writer", ev)
		}

		if _, err := br.OpenSession(t.Context(), ttl); !errors.Is(err, election.ErrInvalidArgument) {
			t.Fatalf("observer's OpenSession = %v, want ErrInvalidArgument", err)
		}
		// What the observer can read of the holder.
		p := rawKey(t, raw, bw, "observed")
		var r record
		if err := json.Unmarshal(p.Value, &r); err != nil || r.Token != "secret-token" || p.Session != sw.id {
			t.Fatalf("raw key = %s (session %s), %v", p.Value, p.Session, err)
		}
		stolen := &session{b: br, id: p.Session, ttl: ttl}
		stolen.remember(held)
		if _, err := stolen.Claim(t.Context(), election.ClaimRequest{Name: "vacant", Token: "t"}); !errors.Is(err, election.ErrInvalidArgument) {
			t.Fatalf("observer's Claim with the holder's session = %v, want ErrInvalidArgument", err)
		}
		if err := stolen.Renew(t.Context(), []election.Claim{held}); !errors.Is(err, election.ErrInvalidArgument) {
			t.Fatalf("observer's Renew of the holder's session = %v, want ErrInvalidArgument", err)
		}
		for _, s := range []*session{stolen, {b: br, id: p.Session, ttl: ttl}} { // by fence; by token
			if err := s.Release(t.Context(), held); !errors.Is(err, election.ErrInvalidArgument) {
				t.Fatalf("observer's Release with the holder's token = %v, want ErrInvalidArgument", err)
			}
		}
		if _, err := br.client.Session().Destroy(p.Session, br.write(t.Context())); err == nil {
			t.Fatalf("observer destroyed the holder's session")
		}
		// The claim is untouched.
		if err := sw.Renew(t.Context(), []election.Claim{held}); err != nil {
			t.Fatalf("holder's Renew after the observer's attempts = %v", err)
		}
		if after := rawKey(t, raw, bw, "observed"); after == nil || after.ModifyIndex != held.Fence || after.Session != sw.id {
			t.Fatalf("key after the observer's attempts = %+v, want the holder's at fence %d", after, held.Fence)
		}
	})

	t.Run("EnvironmentToken", func(t *testing.T) {
		// CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN_FILE as the consul CLI
		// reads them; a wrong CONSUL_HTTP_TOKEN loses to the file.
		clearConsulEnv(t)
		file := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(file, []byte(a.token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv(api.HTTPAddrEnvName, "http://"+a.addr)
		t.Setenv(api.HTTPTokenEnvName, "wrong")
		t.Setenv(api.HTTPTokenFileEnvName, file)
		b, err := New(Config{MinTTL: testMinTTL})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		s := openSession(t, b, ttl)
		claim(t, s, "from-env", "t", "env")

		// An explicit Address wins over CONSUL_HTTP_ADDR.
		t.Setenv(api.HTTPAddrEnvName, "127.0.0.1:1")
		b2, err := New(Config{Address: a.addr, MinTTL: testMinTTL})
		if err != nil {
			t.Fatal(err)
		}
		defer b2.Close()
		if l, err := b2.Leader(t.Context(), "from-env"); err != nil || l.ID != "env" {
			t.Fatalf("Leader = %+v, %v", l, err)
		}
	})
}
