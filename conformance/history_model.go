package conformance

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The sequential specification of one election that LinearizableHistory
// checks with porcupine. At most one claim holds the election; a claim
// succeeds only when it is vacant, and every claim (held or put in line)
// gets a fence greater than any before it; renew and release work only
// with a token the store holds. A holder, or a claim in line, may vanish
// without a release only if the store could have expired it: when its
// session was last opened or renewed (the call time) more than a TTL
// before the operation that finds it gone returned. When the holder
// vanishes, by release or expiry, the first claim in line holds the
// election, with the fence it was given in line.
//
// Expiry is nondeterministic: a claim the store may expire may also still
// be there (stores expire late, by up to the harness's ExpiryLag), so the
// model is a porcupine.NondeterministicModel whose step tries every set of
// expirable sessions.

// opKind names the operations of a history.
type opKind int

const (
	opClaim opKind = iota
	opEnqueue
	opRenew
	opRelease
	opLeader
)

func (k opKind) String() string {
	return [...]string{"claim", "enqueue", "renew", "release", "leader"}[k]
}

// histIn is one operation's input: what a session asked, and when. Times
// are nanoseconds since the run started, on the test's clock; the store
// applied the operation at some moment between call and ret.
type histIn struct {
	kind opKind
	// session numbers the session that made the call; a client that lost
	// its session opens one with a new number.
	session int
	// opened is when that session's OpenSession was called.
	opened int64
	// token is, for claim and enqueue, the new claim's token (also its
	// ID); for renew, the claim renewed, "" to renew the session alone;
	// for release, the claim released. Leader reads have none.
	token     string
	call, ret int64
}

// result is how an operation ended.
type result int

const (
	// resOK: a claim or enqueue took the election or joined its line, a
	// renew renewed, a release released, a leader read found a holder.
	resOK result = iota
	// resRefused: a claim found the election held (a *TakenError), a
	// renew or release was not the owner's, a leader read found it vacant.
	resRefused
	// resExpired: the session was gone (ErrSessionExpired).
	resExpired
)

func (r result) String() string { return [...]string{"ok", "refused", "session expired"}[r] }

// histOut is one operation's output.
type histOut struct {
	result result
	// queued: the enqueued claim waits in line behind holder.
	queued bool
	// fence is the fence of the claim a claim or enqueue made.
	fence uint64
	// holder and holderFence name the holder a claim found (taken), an
	// enqueue queued behind, or a leader read returned.
	holder      string
	holderFence uint64
}

// term is a claim in the model: held, or waiting in line.
type term struct {
	token   string
	session int
	fence   uint64
}

// electionState is the model's state. It is never modified in place:
// every step builds a new one, sharing what it does not change.
type electionState struct {
	holder term   // token "" when vacant
	line   []term // claims waiting, oldest first
	fence  uint64 // the greatest fence issued
	// since is, per session, the call time of its OpenSession or of its
	// latest Renew that returned nil or a NotOwnerError: the store keeps
	// the session's claims at least until since + TTL.
	since map[int]int64
}

// historyModel returns the model for sessions opened with ttl.
func historyModel(ttl time.Duration) porcupine.Model {
	m := porcupine.NondeterministicModel{
		Init: func() []any { return []any{electionState{}} },
		Step: func(state, input, output any) []any {
			return stepHistory(ttl.Nanoseconds(), state.(electionState), input.(histIn), output.(histOut))
		},
		Equal: func(a, b any) bool { return a.(electionState).key() == b.(electionState).key() },
		Hash: func(s any) uint64 {
			h := fnv.New64a()
			h.Write([]byte(s.(electionState).key()))
			return h.Sum64()
		},
		DescribeOperation: describeOp,
		DescribeState:     func(s any) string { return s.(electionState).key() },
	}
	return m.ToModel()
}

// stepHistory returns every state the election may be in after in, given
// out: one for each set of sessions the store may have expired before in
// took effect under which out is a correct answer. None means out is
// wrong whatever the store expired.
func stepHistory(ttl int64, st electionState, in histIn, out histOut) []any {
	st = st.renewed(in.session, in.opened)
	expirable := st.expirable(in.ret, ttl)
	var next []any
	for set := 0; set < 1<<len(expirable); set++ {
		var gone []int
		for i, s := range expirable {
			if set&(1<<i) != 0 {
				gone = append(gone, s)
			}
		}
		if n, ok := st.expire(gone...).apply(ttl, in, out); ok {
			next = append(next, n)
		}
	}
	return next
}

// apply is the deterministic part of a step: in, answered with out, on st.
func (st electionState) apply(ttl int64, in histIn, out histOut) (electionState, bool) {
	if out.result == resExpired {
		// Any operation may find the session gone, but only once the
		// store may have expired it; its claims went with it.
		if in.kind == opLeader || st.since[in.session]+ttl > in.ret {
			return st, false
		}
		return st.expire(in.session), true
	}
	switch in.kind {
	case opClaim, opEnqueue:
		if out.result == resRefused {
			// Only Claim is refused; Enqueue queues instead.
			return st, in.kind == opClaim && st.holder.token != "" &&
				out.holder == st.holder.token && out.holderFence == st.holder.fence
		}
		if out.fence <= st.fence {
			return st, false
		}
		t := term{token: in.token, session: in.session, fence: out.fence}
		if out.queued {
			if in.kind != opEnqueue || st.holder.token == "" ||
				out.holder != st.holder.token || out.holderFence != st.holder.fence {
				return st, false
			}
			st.line = append(slices.Clone(st.line), t)
		} else {
			if st.holder.token != "" {
				return st, false
			}
			st.holder = t
		}
		st.fence = out.fence
		return st, true
	case opRenew:
		held := in.token != "" && st.holder.token == in.token
		inLine := in.token != "" && st.lineIndex(in.token) >= 0
		switch {
		case out.result == resOK && in.token != "" && !held && !inLine:
			return st, false // renewed a claim the store does not hold
		case out.result == resRefused && (in.token == "" || held):
			return st, false // refused the holder, or a renewal of no claim
		}
		// A claim in line is not held: the contract leaves its renewal's
		// answer open (etcd renews it with its session, memory says not
		// owner), so either is accepted and the line is unchanged.
		// Either answer extended the session (Renew's contract).
		return st.renewed(in.session, in.call), true
	case opRelease:
		i := st.lineIndex(in.token)
		switch {
		case in.token != "" && st.holder.token == in.token:
			return st.endTerm(), out.result == resOK
		case i >= 0:
			st.line = slices.Delete(slices.Clone(st.line), i, i+1)
			return st, out.result == resOK
		}
		return st, out.result == resRefused
	default: // opLeader
		if st.holder.token == "" {
			return st, out.result == resRefused
		}
		return st, out.result == resOK && out.holder == st.holder.token && out.holderFence == st.holder.fence
	}
}

// renewed records that session s was opened or renewed at call.
func (st electionState) renewed(s int, call int64) electionState {
	if old, ok := st.since[s]; ok && old >= call {
		return st
	}
	since := make(map[int]int64, len(st.since)+1)
	for k, v := range st.since {
		since[k] = v
	}
	since[s] = call
	st.since = since
	return st
}

// expirable returns the sessions that hold a claim (or one in line) the
// store may have expired before an operation that returned at ret.
func (st electionState) expirable(ret, ttl int64) []int {
	var out []int
	add := func(t term) {
		if !slices.Contains(out, t.session) && st.since[t.session]+ttl <= ret {
			out = append(out, t.session)
		}
	}
	if st.holder.token != "" {
		add(st.holder)
	}
	for _, t := range st.line {
		add(t)
	}
	return out
}

// expire drops every claim of the sessions gone, held or in line; if the
// holder is among them, the first claim left in line holds the election.
func (st electionState) expire(gone ...int) electionState {
	if len(gone) == 0 {
		return st
	}
	kept := make([]term, 0, len(st.line))
	for _, t := range st.line {
		if !slices.Contains(gone, t.session) {
			kept = append(kept, t)
		}
	}
	st.line = kept
	if st.holder.token != "" && slices.Contains(gone, st.holder.session) {
		st = st.endTerm()
	}
	return st
}

// endTerm removes the holder; the first claim in line, if any, holds the
// election from then on.
func (st electionState) endTerm() electionState {
	st.holder = term{}
	if len(st.line) > 0 {
		st.holder = st.line[0]
		st.line = slices.Clone(st.line[1:])
	}
	return st
}

func (st electionState) lineIndex(token string) int {
	return slices.IndexFunc(st.line, func(t term) bool { return t.token == token })
}

// key is a canonical description of st: equal states have equal keys.
func (st electionState) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "holder=%s/s%d/%d line=[", st.holder.token, st.holder.session, st.holder.fence)
	for _, t := range st.line {
		fmt.Fprintf(&b, " %s/s%d/%d", t.token, t.session, t.fence)
	}
	fmt.Fprintf(&b, " ] fence=%d since={", st.fence)
	sessions := make([]int, 0, len(st.since))
	for s := range st.since {
		sessions = append(sessions, s)
	}
	slices.Sort(sessions)
	for _, s := range sessions {
		fmt.Fprintf(&b, " s%d:%d", s, st.since[s])
	}
	b.WriteString(" }")
	return b.String()
}

func describeOp(input, output any) string {
	in, out := input.(histIn), output.(histOut)
	s := fmt.Sprintf("s%d %v(%s) -> %v", in.session, in.kind, in.token, out.result)
	switch {
	case in.kind == opClaim || in.kind == opEnqueue:
		if out.result == resOK {
			s += fmt.Sprintf(" fence=%d", out.fence)
		}
		if out.result == resRefused || out.queued {
			s += fmt.Sprintf(" holder=%s/%d", out.holder, out.holderFence)
		}
	case in.kind == opLeader && out.result == resOK:
		s += fmt.Sprintf(" holder=%s/%d", out.holder, out.holderFence)
	}
	return s
}
