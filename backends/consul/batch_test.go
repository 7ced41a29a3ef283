package consul

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

// One batch of claims over keys in every state: absent keys are claimed,
// a key held by another session is reported taken (its holder named), a
// key written without a session (vacant, with a value) is claimed in the
// next round, and a claim this session already holds is reported taken.
// Each claim's fence is its key's ModifyIndex, and the claims are renewed
// and released like single claims.
func TestClaimBatch(t *testing.T) {
	a := startAgent(t, agentOptions{})
	raw := a.client(t)
	b := a.backend(t, func(c *Config) { c.Prefix = "batch" })
	other := openSession(t, b, 10*time.Second)
	mine := openSession(t, b, 10*time.Second)
	claim(t, other, "held", "other-token", "other")
	claim(t, mine, "mine", "first-token", "me")
	if _, err := raw.KV().Put(&api.KVPair{Key: b.Key("written"), Value: []byte("operator was here")}, nil); err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "held", "b", "written", "mine", "c"}
	reqs := make([]election.ClaimRequest, len(names))
	for i, name := range names {
		reqs[i] = election.ClaimRequest{Name: name, Token: fmt.Sprintf("token-%d", i), ID: "me"}
	}
	claims, errs := mine.ClaimBatch(t.Context(), reqs)
	for i, name := range names {
		switch name {
		case "held", "mine":
			var taken *election.TakenError
			if !errors.As(errs[i], &taken) {
				t.Fatalf("%s: %v, want taken", name, errs[i])
			}
			want := map[string]string{"held": "other", "mine": "me"}[name]
			if taken.Holder.ID != want {
				t.Fatalf("%s: taken by %q, want %q", name, taken.Holder.ID, want)
			}
		default:
			if errs[i] != nil {
				t.Fatalf("%s: %v", name, errs[i])
			}
			p := rawKey(t, raw, b, name)
			if p == nil || p.Session != mine.id || claims[i].Fence != p.ModifyIndex || claims[i].Token != reqs[i].Token {
				t.Fatalf("%s: claim %+v, key %+v: want locked by the session at the claim's fence", name, claims[i], p)
			}
		}
	}
	var won []election.Claim
	for i := range names {
		if errs[i] == nil {
			won = append(won, claims[i])
		}
	}
	if err := mine.Renew(t.Context(), won); err != nil {
		t.Fatalf("Renew of the batch's claims: %v", err)
	}
	for _, c := range won {
		if err := mine.Release(t.Context(), c); err != nil {
			t.Fatalf("Release %s: %v", c.Name, err)
		}
	}
	// A batch larger than the transaction allows is refused, not cut.
	big := make([]election.ClaimRequest, mine.MaxClaimBatch()+1)
	for i := range big {
		big[i] = election.ClaimRequest{Name: fmt.Sprintf("big-%d", i), Token: "t", ID: "me"}
	}
	if _, errs := mine.ClaimBatch(t.Context(), big); !errors.Is(errs[0], election.ErrInvalidArgument) {
		t.Fatalf("a batch of %d: %v, want ErrInvalidArgument", len(big), errs[0])
	}
}
