package consul

import (
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

	t.Run("LeastPrivilege", func(t *testing.T) {
		// The grants the README documents: write on the prefix, session
		// write on the node. A read-only token can observe but not claim.
		policy := func(name, rules string) *api.ACLPolicy {
			p, _, err := raw.ACL().PolicyCreate(&api.ACLPolicy{Name: name, Rules: rules}, nil)
			if err != nil {
				t.Fatalf("create policy: %v", err)
			}
			return p
		}
		token := func(p *api.ACLPolicy) string {
			tok, _, err := raw.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: p.ID}}}, nil)
			if err != nil {
				t.Fatalf("create token: %v", err)
			}
			return tok.SecretID
		}
		writer := token(policy("elector", `key_prefix "acl/" { policy = "write" }
session_prefix "" { policy = "write" }`))
		reader := token(policy("observer", `key_prefix "acl/" { policy = "read" }
session_prefix "" { policy = "write" }`))

		bw := a.backend(t, func(c *Config) { c.Token, c.Prefix = writer, "acl" })
		br := a.backend(t, func(c *Config) { c.Token, c.Prefix = reader, "acl" })
		sw, sr := openSession(t, bw, ttl), openSession(t, br, ttl)
		c := claim(t, sw, "scoped", "t", "writer")
		if err := sw.Renew(t.Context(), []election.Claim{c}); err != nil {
			t.Fatalf("Renew = %v", err)
		}
		if l, err := br.Leader(t.Context(), "scoped"); err != nil || l.ID != "writer" {
			t.Fatalf("reader's Leader = %+v, %v", l, err)
		}
		if _, err := sr.Claim(t.Context(), election.ClaimRequest{Name: "other", Token: "t"}); !errors.Is(err, election.ErrInvalidArgument) {
			t.Fatalf("Claim with a read-only token = %v, want ErrInvalidArgument", err)
		}
		if err := sw.Release(t.Context(), c); err != nil {
			t.Fatalf("Release = %v", err)
		}
		// Outside its prefix the writer is refused.
		bo := a.backend(t, func(c *Config) { c.Token, c.Prefix = writer, "elsewhere" })
		so := openSession(t, bo, ttl)
		if _, err := so.Claim(t.Context(), election.ClaimRequest{Name: "x", Token: "t"}); !errors.Is(err, election.ErrInvalidArgument) {
			t.Fatalf("Claim outside the granted prefix = %v, want ErrInvalidArgument", err)
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
