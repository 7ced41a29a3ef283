package memory_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// TestOpenURLRejected: a memory:// URL takes no parameters, path, user info
// or port; every such problem is named in one error, which never shows the
// password.
func TestOpenURLRejected(t *testing.T) {
	const invalid = "memory: election: invalid argument: url: "
	for raw, want := range map[string]string{
		"memory://x?pool=3":  invalid + "unknown query parameter: pool (this URL takes none)",
		"memory://x?b=1&a=2": invalid + "unknown query parameters: a, b (this URL takes none)",
		"memory://x:80":      invalid + "memory://x:80: a path, user info or port is not supported (want memory://NAME)",
		"memory://u:secret@x/path?ttl_ms=5&z": invalid + "unknown query parameters: ttl_ms, z (this URL takes none)\n" +
			invalid + "memory://u:xxxxx@x/path?ttl_ms=5&z: a path, user info or port is not supported (want memory://NAME)",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		b, err := memory.OpenURL(t.Context(), u)
		if err == nil {
			_ = election.CloseBackend(b)
			t.Errorf("OpenURL(%s) succeeded", raw)
			continue
		}
		if !errors.Is(err, election.ErrInvalidArgument) || err.Error() != want {
			t.Errorf("OpenURL(%s) =\n%v\nwant ErrInvalidArgument:\n%s", raw, err, want)
		}
	}
}

// TestOpenURLNamed: memory://NAME reaches one store from every client, and
// memory:// a private one.
func TestOpenURLNamed(t *testing.T) {
	open := func(raw string) election.Backend {
		t.Helper()
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		b, err := memory.OpenURL(t.Context(), u)
		if err != nil {
			t.Fatalf("OpenURL(%s): %v", raw, err)
		}
		t.Cleanup(func() { _ = election.CloseBackend(b) })
		return b
	}
	claim := func(b election.Backend, id string) error {
		t.Helper()
		s, err := b.OpenSession(t.Context(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		_, err = s.Claim(t.Context(), election.ClaimRequest{Name: "shared", Token: "token-" + id, ID: id})
		return err
	}
	if err := claim(open("memory://url-named"), "a"); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if err := claim(open("memory://url-named/"), "b"); !errors.Is(err, election.ErrTaken) {
		t.Errorf("claim through a second client of the same name = %v, want ErrTaken", err)
	}
	if err := claim(open("memory://"), "c"); err != nil {
		t.Errorf("claim in a private store = %v, want success", err)
	}
}
