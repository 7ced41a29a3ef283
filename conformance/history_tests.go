package conformance

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/electionkit/election"
)

// The sequential specification of one election, for porcupine: at most one
// holder, claims succeed only when vacant and with a greater fence than any
// before, renew and release only with the holder's token.
type electionState struct {
	holder string // token of the holder, "" when vacant
	fence  uint64 // fence of the latest term
}

type opKind int

const (
	opClaim opKind = iota
	opRenew
	opRelease
	opLeader
)

type histIn struct {
	kind  opKind
	token string
}

type histOut struct {
	ok     bool   // claim, renew, release succeeded; leader read found a holder
	holder string // claim taken or leader read: the holder's ID (= its token)
	fence  uint64 // claim ok: the new fence; taken or leader read: the holder's
}

var electionModel = porcupine.Model{
	Init: func() any { return electionState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(electionState), input.(histIn), output.(histOut)
		switch in.kind {
		case opClaim:
			if st.holder == "" {
				return out.ok && out.fence > st.fence, electionState{holder: in.token, fence: out.fence}
			}
			return !out.ok && out.holder == st.holder && out.fence == st.fence, st
		case opRenew:
			return out.ok == (st.holder == in.token), st
		case opRelease:
			if st.holder == in.token {
				return out.ok, electionState{fence: st.fence}
			}
			return !out.ok, st
		default: // opLeader
			if st.holder == "" {
				return !out.ok, st
			}
			return out.ok && out.holder == st.holder && out.fence == st.fence, st
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(histIn), output.(histOut)
		return fmt.Sprintf("%v(%s) -> ok=%v holder=%s fence=%d", in.kind, in.token, out.ok, out.holder, out.fence)
	},
}

// testLinearizable: concurrent clients claim, renew, release and read one
// election on the raw Backend; porcupine checks that the recorded history
// is linearizable against the sequential specification above.
func testLinearizable(e *env) {
	const clients, opsPerClient = 4, 60
	ttl := 10 * e.timing.TTL // long enough that nothing expires during the run
	start := time.Now()
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		tokens  []string // every token claimed with, for forged releases
		wg      sync.WaitGroup
	)
	for ci := 0; ci < clients; ci++ {
		n := e.newNode(fmt.Sprintf("lin-%d", ci))
		sess, err := n.b.OpenSession(e.ctx, ttl)
		if err != nil {
			e.t.Fatalf("OpenSession: %v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(ci), 7))
			var mine *election.Claim
			for op := 0; op < opsPerClient && e.ctx.Err() == nil; op++ {
				var in histIn
				switch r := rng.IntN(100); {
				case r < 40:
					in = histIn{kind: opClaim, token: fmt.Sprintf("c%d-op%d", ci, op)}
				case r < 55 && mine != nil:
					in = histIn{kind: opRenew, token: mine.Token}
				case r < 80:
					in = histIn{kind: opRelease}
					mu.Lock()
					switch {
					case mine != nil && rng.IntN(2) == 0:
						in.token = mine.Token
					case len(tokens) > 0:
						in.token = tokens[rng.IntN(len(tokens))]
					default:
						in.token = "never-claimed"
					}
					mu.Unlock()
				default:
					in = histIn{kind: opLeader}
				}
				call := time.Since(start).Nanoseconds()
				out, skip, err := e.historyOp(sess, n.b, in, &mine)
				ret := time.Since(start).Nanoseconds()
				if err != nil {
					e.t.Errorf("client %d %v: %v", ci, in, err)
					return
				}
				mu.Lock()
				if in.kind == opClaim {
					tokens = append(tokens, in.token)
				}
				if !skip {
					history = append(history, porcupine.Operation{ClientId: ci, Input: in, Call: call, Output: out, Return: ret})
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if e.t.Failed() {
		return
	}
	if took := time.Since(start); took >= ttl {
		e.t.Fatalf("the run took %v, longer than the sessions' TTL %v: claims may have expired mid-history", took, ttl)
	}
	res, _ := porcupine.CheckOperationsVerbose(electionModel, history, time.Minute)
	if res != porcupine.Ok {
		sort.Slice(history, func(i, j int) bool { return history[i].Call < history[j].Call })
		var b strings.Builder
		for _, op := range history {
			fmt.Fprintf(&b, "  client %d [%8.3fms %8.3fms] %s\n", op.ClientId, float64(op.Call)/1e6, float64(op.Return)/1e6,
				electionModel.DescribeOperation(op.Input, op.Output))
		}
		e.t.Fatalf("history of %d operations is not linearizable against the election model: %v\n%s", len(history), res, b.String())
	}
}

func (k opKind) String() string {
	return [...]string{"claim", "renew", "release", "leader"}[k]
}

// historyOp performs one operation and maps its result to the model's
// output. skip reports a claim refused without a holder (a store that
// refuses claims for a while, such as Redis's restart quarantine), which
// changes nothing and is left out of the history.
func (e *env) historyOp(s election.Session, b election.Backend, in histIn, mine **election.Claim) (histOut, bool, error) {
	const name = "linearizable"
	switch in.kind {
	case opClaim:
		c, err := s.Claim(e.ctx, election.ClaimRequest{Name: name, Token: in.token, ID: in.token})
		var taken *election.TakenError
		switch {
		case err == nil:
			*mine = &c
			return histOut{ok: true, fence: c.Fence}, false, nil
		case errors.As(err, &taken):
			if taken.Holder.ID == "" && taken.Holder.Fence == 0 {
				return histOut{}, true, nil
			}
			return histOut{holder: taken.Holder.ID, fence: taken.Holder.Fence}, false, nil
		default:
			return histOut{}, false, err
		}
	case opRenew:
		err := s.Renew(e.ctx, []election.Claim{**mine})
		if err != nil && !errors.Is(err, election.ErrNotOwner) {
			return histOut{}, false, err
		}
		return histOut{ok: err == nil}, false, nil
	case opRelease:
		c := election.Claim{Name: name, Token: in.token}
		if *mine != nil && (*mine).Token == in.token {
			c = **mine
		}
		err := s.Release(e.ctx, c)
		if err != nil && !errors.Is(err, election.ErrNotOwner) {
			return histOut{}, false, err
		}
		return histOut{ok: err == nil}, false, nil
	default:
		l, err := b.Leader(e.ctx, name)
		switch {
		case errors.Is(err, election.ErrNoLeader):
			return histOut{}, false, nil
		case err != nil:
			return histOut{}, false, err
		}
		return histOut{ok: true, holder: l.ID, fence: l.Fence}, false, nil
	}
}
