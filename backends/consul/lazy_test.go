package consul

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/storedown"
)

// A consul:// URL always opens without contacting the agent: lazy=true is
// accepted, lazy=false refused; a candidate on a stopped agent campaigns
// (Start does not fail) and is elected once the agent starts.
func TestOpenURLLazy(t *testing.T) {
	clearConsulEnv(t)
	for raw, ok := range map[string]bool{
		"consul://127.0.0.1:1?lazy=true":  true,
		"consul://127.0.0.1:1?lazy=1":     true,
		"consul://127.0.0.1:1?lazy=false": false,
		"consul://127.0.0.1:1?lazy=maybe": false,
	} {
		u, _ := url.Parse(raw)
		b, err := OpenURL(t.Context(), u)
		switch {
		case ok && err != nil:
			t.Errorf("OpenURL(%s) = %v, want a Backend", raw, err)
		case !ok && (!errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "url lazy") ||
			!strings.Contains(err.Error(), "always opens without contacting the agent")):
			t.Errorf("OpenURL(%s) = %v, want ErrInvalidArgument explaining lazy", raw, err)
		}
		if b != nil {
			_ = b.Close()
		}
	}

	a := startAgent(t, agentOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	backend, cfg, err := election.Open(ctx, "consul://"+a.addr+"?lazy=true&min_ttl=1s&ttl=2s")
	if err != nil {
		t.Fatalf("election.Open with the agent down: %v", err)
	}
	defer election.CloseBackend(backend)
	storedown.ElectedOnceUp(t, ctx, backend, cfg, func() error { return a.Start(ctx) })
}
