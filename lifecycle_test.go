// lifecycle_test.go proves step on its own, with no goroutine, store or
// clock: the terms are made by newTerm on a bare Candidate and never run.
//
// TestStep is the table: every input kind (with each claim outcome, each
// renewal outcome, each kind of watch event, and stale versions of every
// input about a term or a timer) in every State (with Claiming,
// SteppingDown and Releasing in each of their variants). For each cell it
// checks the whole next lifecycle and the exact effects. A cell the table
// does not list must change nothing, apart from what any watch event does
// in any state but Stopped: record the leader it shows, report a failure
// (EventWatchFailed) or a new leader (EventLeaderChanged).
//
// The other TestStep* tests are properties over the same cells:
//   - a term starts only on the transition into Leading (invariant 2);
//   - a claim is not released, abandoned or untracked while its term's
//     handlers can run, unless the store is known not to hold it
//     (invariant 1);
//   - a change of state emits an event, every
//     event carries the state after the step, and none carries a whole
//     owner token (invariant 4);
//   - arming takes a new timer generation, and leaving Campaigning or
//     Resigned for Claiming voids every timer armed before;
//   - inputs about another term, or an old timer, change nothing; step is
//     deterministic and leaves its input as it was;
//   - from every state, Stop ends in Stopped once the outstanding work is
//     answered, with every claim settled (invariant 3), after which only
//     a Resign gets an answer;
//   - every Resign gets exactly one reply.
//
// TestStepStop and TestStepResign check the first four on every step of
// their runs too.

package election

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	fxElection = "jobs"
	fxID       = "me"
	fxTTL      = 10 * time.Second
	fxLatency  = 40 * time.Millisecond // of every claim answer
	fxExpires  = 3 * time.Second       // ExpiresIn of the watch events and claim answers that have one
	fxOverrun  = 250 * time.Millisecond
	fxTimer    = uint64(7) // the timer generation of every fixture but Idle
)

// fxCand is just enough of a Candidate for newTerm and term.leader.
var fxCand = &Candidate{cfg: CandidateConfig{Name: fxElection, ID: fxID, Metadata: map[string]string{"addr": "10.0.0.7:80"}}}

func fxTerm(token string, fence uint64) *term {
	return newTerm(fxCand, nil, Claim{Name: fxElection, Token: token, Fence: fence}, time.Time{}, time.Time{})
}

var (
	// cur is the claim the fixtures hold or have in line.
	cur = fxTerm("cur-owner-token-5f2a9c41d7e3", 12)
	// won is the claim a claim answer brings.
	won = fxTerm("won-owner-token-8b13e07f6a52", 14)
	// unanswered is a claim whose answer was lost: it may have been applied.
	unanswered = fxTerm("unanswered-owner-token-3c9d", 0)
	// stray is an earlier term of the candidate: inputs about it are stale.
	stray = fxTerm("stray-owner-token-a41f7e2b90", 10)

	fxTokens = []string{cur.claim.Token, won.claim.Token, unanswered.claim.Token, stray.claim.Token}

	self  = cur.leader()                                          // the candidate's own term, as the watch shows it
	older = &Leader{Election: fxElection, ID: "other", Fence: 11} // a term before cur
	newer = &Leader{Election: fxElection, ID: "rival", Fence: 13} // a term after cur

	errRenew   = errors.New("store: renew: i/o timeout")
	errSession = fmt.Errorf("store: lease 42: %w", ErrSessionExpired)
	errClaim   = fmt.Errorf("election: claim %q: %w", fxElection, ErrUnavailable)
	errRelease = fmt.Errorf("election: release %q: %w", fxElection, ErrUnavailable)
	errWatch   = errors.New("store: watch: connection reset")

	// resignReply is the reply channel of the Resign fed as input; earlier
	// is that of a Resign the fixtures already hold.
	resignReply = make(chan error, 1)
	earlier     = make(chan error, 1)
)

// A fixture is a named lifecycle to step from.
type fixture struct {
	name string
	s    lifecycle
}

// fixtures returns every state the table steps from, fresh each call.
// SteppingDown after a loss is always lost (a loss sets it); only a
// step-down by Stop or Resign can be not yet lost.
func fixtures() []fixture {
	at := func(st State, f func(s *lifecycle)) lifecycle {
		s := lifecycle{state: st, id: fxID, ttl: fxTTL, timer: fxTimer}
		if f != nil {
			f(&s)
		}
		return s
	}
	holding := func(st State, then exit, lost, gone, resigning bool, leader *Leader) lifecycle {
		return at(st, func(s *lifecycle) {
			s.term, s.then, s.lost, s.gone, s.confirmed, s.leader = cur, then, lost, gone, true, leader
			if resigning {
				s.resigners = []chan error{earlier}
			}
		})
	}
	fs := []fixture{
		{"idle", lifecycle{state: StateIdle, id: fxID, ttl: fxTTL}},
		{"campaigning", at(StateCampaigning, func(s *lifecycle) { s.leader, s.failures = older, 2 })},
		{"claiming", at(StateClaiming, func(s *lifecycle) { s.leader, s.failures = older, 2 })},
		{"claiming:stop", at(StateClaiming, func(s *lifecycle) { s.leader, s.failures, s.then = older, 2, exitStop })},
		{"queued", at(StateQueued, func(s *lifecycle) { s.term, s.leader = cur, older })},
		{"leading", at(StateLeading, func(s *lifecycle) { s.term, s.leader, s.confirmed = cur, self, true })},
		{"leading:unconfirmed", at(StateLeading, func(s *lifecycle) { s.term, s.leader = cur, self })},
		{"uncertain", at(StateUncertain, func(s *lifecycle) { s.term, s.leader, s.confirmed = cur, self, true })},
		{"uncertain:unconfirmed", at(StateUncertain, func(s *lifecycle) { s.term, s.leader = cur, self })},
		{"stepping-down:campaign,lost", holding(StateSteppingDown, exitCampaign, true, false, false, self)},
		{"stepping-down:campaign,lost,gone", holding(StateSteppingDown, exitCampaign, true, true, false, self)},
		{"stepping-down:campaign,lost,gone,vacant", holding(StateSteppingDown, exitCampaign, true, true, false, nil)},
	}
	for _, then := range []exit{exitResign, exitStop} {
		name := map[exit]string{exitResign: "resign", exitStop: "stop"}[then]
		for _, lost := range []bool{false, true} {
			for _, gone := range []bool{false, true} {
				n := "stepping-down:" + name
				if lost {
					n += ",lost"
				}
				if gone {
					n += ",gone"
				}
				fs = append(fs, fixture{n, holding(StateSteppingDown, then, lost, gone, then == exitResign, self)})
			}
		}
	}
	return append(fs,
		fixture{"stepping-down:resign-then-stop", holding(StateSteppingDown, exitStop, false, false, true, self)},
		fixture{"releasing:campaign", holding(StateReleasing, exitCampaign, true, false, false, self)},
		fixture{"releasing:campaign,vacant", holding(StateReleasing, exitCampaign, true, false, false, nil)},
		fixture{"releasing:resign", holding(StateReleasing, exitResign, false, false, true, self)},
		fixture{"releasing:stop", holding(StateReleasing, exitStop, false, false, false, self)},
		fixture{"releasing:resign-then-stop", holding(StateReleasing, exitStop, false, false, true, self)},
		fixture{"resigned", at(StateResigned, func(s *lifecycle) { s.leader = self })},
		fixture{"stopped", at(StateStopped, nil)},
	)
}

// A stimulus is a named input, made for the state it is fed to (inputs
// about the current term name that state's term).
type stimulus struct {
	name string
	in   func(s lifecycle) input
}

func fixed(in input) func(lifecycle) input { return func(lifecycle) input { return in } }

func claimed(r claimResult) func(lifecycle) input {
	r.latency = fxLatency
	return fixed(input{kind: inClaimed, claim: r})
}

// onTerm makes in about the state's own term (nil if it has none).
func onTerm(in input) func(lifecycle) input {
	return func(s lifecycle) input { in.term = s.term; return in }
}

var (
	claimOutcomes = []stimulus{
		{"claimed:won", claimed(claimResult{term: won})},
		{"claimed:queued", claimed(claimResult{term: won, holder: older})},
		{"claimed:taken", claimed(claimResult{taken: &TakenError{Holder: *newer}})},
		{"claimed:taken+expires", claimed(claimResult{taken: &TakenError{Holder: *newer, ExpiresIn: fxExpires}})},
		{"claimed:refused", claimed(claimResult{taken: &TakenError{ExpiresIn: fxExpires}})},
		{"claimed:session-expired", claimed(claimResult{err: fmt.Errorf("election: claim %q: %w", fxElection, errSession)})},
		{"claimed:failed+term", claimed(claimResult{term: unanswered, err: errClaim})},
		{"claimed:failed", claimed(claimResult{err: errClaim})},
	}
	termInputs = []stimulus{
		{"renewed:ok", onTerm(input{kind: inRenewed, renew: renewOK})},
		{"renewed:failed", onTerm(input{kind: inRenewed, renew: renewFailed, err: errRenew})},
		{"renewed:not-owner", onTerm(input{kind: inRenewed, renew: renewNotOwner})},
		{"deadline", onTerm(input{kind: inDeadline})},
		{"overrun", onTerm(input{kind: inOverrun, overrun: fxOverrun})},
		{"session-lost", onTerm(input{kind: inSessionLost, err: errSession})},
		{"handlers-done", onTerm(input{kind: inHandlersDone, overrun: fxOverrun})},
		{"released:ok", onTerm(input{kind: inReleased})},
		{"released:err", onTerm(input{kind: inReleased, err: errRelease})},
	}
	watchInputs = []stimulus{
		{"watch:error", fixed(input{kind: inWatch, watch: WatchEvent{Err: errWatch}})},
		{"watch:vacancy", fixed(input{kind: inWatch, watch: WatchEvent{}})},
		{"watch:own", fixed(input{kind: inWatch, watch: WatchEvent{Leader: self}})},
		{"watch:older", fixed(input{kind: inWatch, watch: WatchEvent{Leader: older}})},
		{"watch:newer", fixed(input{kind: inWatch, watch: WatchEvent{Leader: newer}})},
		{"watch:other+expires", fixed(input{kind: inWatch, watch: WatchEvent{Leader: older, ExpiresIn: fxExpires}})},
	}
	timerInputs = []stimulus{
		{"timer:current", func(s lifecycle) input { return input{kind: inTimer, gen: s.timer} }},
		{"timer:stale", func(s lifecycle) input { return input{kind: inTimer, gen: s.timer - 1} }},
	}
)

// staleInputs are the term inputs about another term, of ours or none.
func staleInputs() []stimulus {
	var out []stimulus
	for _, st := range termInputs {
		for _, other := range []*term{stray, nil} {
			mk := st.in
			name := "stale-term:" + st.name
			if other == nil {
				name = "no-term:" + st.name
			}
			out = append(out, stimulus{name, func(s lifecycle) input {
				in := mk(s)
				in.term = other
				return in
			}})
		}
	}
	return out
}

// stimuli returns every input the table feeds, in every state.
func stimuli() []stimulus {
	out := []stimulus{
		{"start", fixed(input{kind: inStart})},
		{"stop", fixed(input{kind: inStop})},
		{"resign", fixed(input{kind: inResign, reply: resignReply})},
	}
	out = append(out, claimOutcomes...)
	out = append(out, termInputs...)
	out = append(out, watchInputs...)
	out = append(out, timerInputs...)
	return append(out, staleInputs()...)
}

// effWant is one expected effect.
type effWant struct {
	kind    effectKind
	term    *term
	queued  bool          // effStartTerm
	err     error         // effCancel: the cause; effReply: what is sent (nil: nil)
	d       time.Duration // effArm: the delay; 0 asks for a backoff
	replies []chan error  // effReply
	ev      Event         // effEmit; State is checked by TestStepEvents
}

func wClaim() effWant { return effWant{kind: effClaim} }

// wClaiming is the event and the claim of a move into Claiming.
func wClaiming() []effWant { return []effWant{wEmit(Event{Kind: EventClaiming}), wClaim()} }
func wStart(t *term, queued bool) effWant {
	return effWant{kind: effStartTerm, term: t, queued: queued}
}
func wQueue(t *term) effWant { return effWant{kind: effQueue, term: t} }
func wCancel(t *term, cause error) effWant {
	return effWant{kind: effCancel, term: t, err: cause}
}
func wUntrack(t *term) effWant     { return effWant{kind: effUntrack, term: t} }
func wRelease(t *term) effWant     { return effWant{kind: effRelease, term: t} }
func wAbandon(t *term) effWant     { return effWant{kind: effAbandon, term: t} }
func wArm(d time.Duration) effWant { return effWant{kind: effArm, d: d} }
func wEmit(ev Event) effWant       { return effWant{kind: effEmit, ev: ev} }
func wStopped() effWant            { return effWant{kind: effStopped} }
func wReply(err error, to ...chan error) effWant {
	return effWant{kind: effReply, err: err, replies: to}
}

// on returns ev about t: its fence and token prefix.
func on(t *term, ev Event) Event {
	ev.Fence, ev.TokenPrefix = t.claim.Fence, t.info.TokenPrefix
	return ev
}

// oneOf matches an error that wraps any of its errors, where the docs
// allow more than one answer.
type oneOf []error

func (o oneOf) Error() string { return fmt.Sprintf("one of %v", []error(o)) }

func errMatches(got, want error) bool {
	switch w := want.(type) {
	case nil:
		return got == nil
	case oneOf:
		for _, e := range w {
			if errors.Is(got, e) {
				return true
			}
		}
		return false
	default:
		return errors.Is(got, want)
	}
}

// mismatch says how e differs from w, or "" if it does not.
func (w effWant) mismatch(e effect, next lifecycle) string {
	if e.kind != w.kind {
		return fmt.Sprintf("kind %s, want %s", kindName(e.kind), kindName(w.kind))
	}
	var bad []string
	if e.term != w.term {
		bad = append(bad, fmt.Sprintf("term %s, want %s", termName(e.term), termName(w.term)))
	}
	switch e.kind {
	case effStartTerm:
		if e.queued != w.queued {
			bad = append(bad, fmt.Sprintf("queued %v, want %v", e.queued, w.queued))
		}
	case effCancel, effReply:
		if !errMatches(e.err, w.err) {
			bad = append(bad, fmt.Sprintf("err %v, want %v", e.err, w.err))
		}
	case effArm:
		if e.d != w.d {
			bad = append(bad, fmt.Sprintf("d %v, want %v", e.d, w.d))
		}
		if e.gen != next.timer {
			bad = append(bad, fmt.Sprintf("gen %d, want the next state's %d", e.gen, next.timer))
		}
		if e.failures != next.failures {
			bad = append(bad, fmt.Sprintf("failures %d, want the next state's %d", e.failures, next.failures))
		}
	case effEmit:
		bad = append(bad, eventMismatch(e.ev, w.ev)...)
	}
	if e.kind == effReply {
		if len(e.replies) != len(w.replies) {
			bad = append(bad, fmt.Sprintf("%d replies, want %d", len(e.replies), len(w.replies)))
		} else {
			for i := range e.replies {
				if e.replies[i] != w.replies[i] {
					bad = append(bad, fmt.Sprintf("reply %d to %s, want %s", i, chanName(e.replies[i]), chanName(w.replies[i])))
				}
			}
		}
	}
	return strings.Join(bad, "; ")
}

func eventMismatch(got, want Event) []string {
	var bad []string
	if got.Kind != want.Kind {
		return []string{fmt.Sprintf("event %v, want %v", got.Kind, want.Kind)}
	}
	if !errMatches(got.Err, want.Err) {
		bad = append(bad, fmt.Sprintf("Err %v, want %v", got.Err, want.Err))
	}
	if !sameLeader(got.Leader, want.Leader) {
		bad = append(bad, fmt.Sprintf("Leader %s, want %s", leaderName(got.Leader), leaderName(want.Leader)))
	}
	type field struct {
		name      string
		got, want any
	}
	for _, f := range []field{
		{"Fence", got.Fence, want.Fence},
		{"TokenPrefix", got.TokenPrefix, want.TokenPrefix},
		{"Reason", got.Reason, want.Reason},
		{"Queued", got.Queued, want.Queued},
		{"Latency", got.Latency, want.Latency},
		{"TTL", got.TTL, want.TTL},
		{"Overrun", got.Overrun, want.Overrun},
		{"Count", got.Count, want.Count},
	} {
		if f.got != f.want {
			bad = append(bad, fmt.Sprintf("%s %v, want %v", f.name, f.got, f.want))
		}
	}
	return bad
}

// lifecycleDiff lists the fields in which got differs from want.
func lifecycleDiff(got, want lifecycle) []string {
	var bad []string
	add := func(name string, g, w any) { bad = append(bad, fmt.Sprintf("%s %v, want %v", name, g, w)) }
	if got.state != want.state {
		add("state", got.state, want.state)
	}
	if got.term != want.term {
		add("term", termName(got.term), termName(want.term))
	}
	if got.then != want.then {
		add("then", got.then, want.then)
	}
	if got.lost != want.lost {
		add("lost", got.lost, want.lost)
	}
	if got.gone != want.gone {
		add("gone", got.gone, want.gone)
	}
	if got.confirmed != want.confirmed {
		add("confirmed", got.confirmed, want.confirmed)
	}
	if !sameLeader(got.leader, want.leader) {
		add("leader", leaderName(got.leader), leaderName(want.leader))
	}
	if !sameChans(got.resigners, want.resigners) {
		add("resigners", chanNames(got.resigners), chanNames(want.resigners))
	}
	if got.failures != want.failures {
		add("failures", got.failures, want.failures)
	}
	if got.timer != want.timer {
		add("timer", got.timer, want.timer)
	}
	if got.id != want.id || got.ttl != want.ttl {
		add("id, ttl", fmt.Sprint(got.id, got.ttl), fmt.Sprint(want.id, want.ttl))
	}
	return bad
}

func sameChans(a, b []chan error) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var effectNames = [...]string{"claim", "start-term", "queue", "cancel", "untrack", "release", "abandon",
	"arm", "emit", "reply", "stopped"}

func kindName(k effectKind) string {
	if int(k) < len(effectNames) {
		return effectNames[k]
	}
	return fmt.Sprintf("effectKind(%d)", k)
}

func termName(t *term) string {
	for name, x := range map[string]*term{"cur": cur, "won": won, "unanswered": unanswered, "stray": stray} {
		if t == x {
			return name
		}
	}
	if t == nil {
		return "nil"
	}
	return fmt.Sprintf("term(fence %d)", t.claim.Fence)
}

func leaderName(l *Leader) string {
	if l == nil {
		return "none"
	}
	return fmt.Sprintf("%s@%d", l.ID, l.Fence)
}

func chanName(c chan error) string {
	switch c {
	case resignReply:
		return "resignReply"
	case earlier:
		return "earlier"
	}
	return fmt.Sprintf("%p", c)
}

func chanNames(cs []chan error) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = chanName(c)
	}
	return "[" + strings.Join(names, " ") + "]"
}

func describe(e effect) string {
	s := kindName(e.kind)
	switch e.kind {
	case effStartTerm, effQueue, effUntrack, effRelease, effAbandon:
		s += "(" + termName(e.term) + ")"
	case effCancel:
		s += fmt.Sprintf("(%s, %v)", termName(e.term), e.err)
	case effArm:
		s += fmt.Sprintf("(gen %d, %v)", e.gen, e.d)
	case effEmit:
		s += fmt.Sprintf("(%v, state %v)", e.ev.Kind, e.ev.State)
	case effReply:
		s += fmt.Sprintf("(%s, %v)", chanNames(e.replies), e.err)
	}
	return s
}

func describeAll(effs []effect) string {
	parts := make([]string, len(effs))
	for i, e := range effs {
		parts[i] = describe(e)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// clone copies s so that steps from it share nothing: resigners gets its
// own array, without room to grow in place.
func clone(s lifecycle) lifecycle {
	s.resigners = append([]chan error(nil), s.resigners...)
	if len(s.resigners) == 0 {
		s.resigners = nil
	}
	return s
}

// stepFrom is step on a copy of s.
func stepFrom(s lifecycle, in input) (lifecycle, []effect) { return step(clone(s), in) }

// A row says what one input does in some states: how the next lifecycle
// differs from the one before (next; nil for no change) and the effects,
// in order. For a watch input the row gives only what is particular to
// the state: the table adds what every watch event does (see
// expectWatch).
type row struct {
	on   []string
	in   string
	next func(s *lifecycle)
	want []effWant
}

func names(prefix string, variants ...string) []string {
	out := make([]string, len(variants))
	for i, v := range variants {
		out[i] = prefix + v
	}
	return out
}

var (
	leads       = []string{"leading", "leading:unconfirmed", "uncertain", "uncertain:unconfirmed"}
	confirmed   = []string{"leading", "uncertain"}
	unconfirmed = []string{"leading:unconfirmed", "uncertain:unconfirmed"}

	sdCampaign = names("stepping-down:campaign,", "lost", "lost,gone", "lost,gone,vacant")
	sdResign   = names("stepping-down:resign", "", ",lost", ",gone", ",lost,gone")
	sdStop     = names("stepping-down:stop", "", ",lost", ",gone", ",lost,gone")
	sdAll      = join(sdCampaign, sdResign, sdStop, []string{"stepping-down:resign-then-stop"})
	sdNotGone  = names("stepping-down:", "campaign,lost", "resign", "resign,lost", "stop", "stop,lost", "resign-then-stop")
	sdNotLost  = names("stepping-down:", "resign", "resign,gone", "stop", "stop,gone", "resign-then-stop")
)

func join(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func one(name string) []string { return []string{name} }

// Changes that rows share.
func to(st State) func(s *lifecycle) { return func(s *lifecycle) { s.state = st } }

// loses is a loss in Leading or Uncertain: the term ends, the claim is
// kept unless gone.
func loses(gone bool) func(s *lifecycle) {
	return func(s *lifecycle) { s.state, s.then, s.lost, s.gone = StateSteppingDown, exitCampaign, true, gone }
}

func lostEv(reason LossReason, err error) Event {
	return on(cur, Event{Kind: EventLost, Reason: reason, Err: err})
}

// settles is how a step-down ends once its claim is settled.
func settles(st State, failures int, timers uint64) func(s *lifecycle) {
	return func(s *lifecycle) {
		s.state, s.term, s.lost, s.gone, s.confirmed, s.resigners = st, nil, false, false, false, nil
		s.failures += failures
		s.timer += timers
	}
}

func tableRows() []row {
	claimedEv := func(t *term, queued bool) Event {
		ev := on(t, Event{Kind: EventClaimed, Leader: t.leader(), TTL: fxTTL, Queued: queued})
		if !queued {
			ev.Latency = fxLatency
		}
		return ev
	}
	taken := func(l *Leader) Event { return Event{Kind: EventClaimTaken, Latency: fxLatency, Leader: l} }
	failed := func(err error) Event { return Event{Kind: EventClaimFailed, Latency: fxLatency, Err: err} }
	stopped := Event{Kind: EventStopped}
	steppingDown := func(t *term) Event { return on(t, Event{Kind: EventSteppingDown}) }
	returned := on(cur, Event{Kind: EventHandlersReturned, Overrun: fxOverrun})
	released := func(err error) Event { return on(cur, Event{Kind: EventReleased, Err: err}) }
	notLeader := wReply(ErrNotLeader, resignReply)
	// A Resign that reaches the driver after a Stop: step answers
	// ErrNotLeader, while Resign itself answers ErrStopped once Stop has
	// been called. The docs do not say which the race should get.
	stopping := wReply(oneOf{ErrNotLeader, ErrStopped}, resignReply)
	expiry := fxExpires + time.Millisecond

	rows := []row{
		// Idle.
		{one("idle"), "start", to(StateClaiming), []effWant{wEmit(Event{Kind: EventStarted}), wClaim()}},
		{one("idle"), "stop", to(StateStopped), []effWant{wEmit(stopped), wStopped()}},
		{one("idle"), "resign", nil, []effWant{notLeader}},

		// Campaigning.
		{one("campaigning"), "stop", func(s *lifecycle) { s.state, s.timer = StateStopped, s.timer+1 },
			[]effWant{wEmit(stopped), wStopped()}},
		{one("campaigning"), "resign", nil, []effWant{notLeader}},
		{one("campaigning"), "timer:current", to(StateClaiming), wClaiming()},
		{one("campaigning"), "watch:error", func(s *lifecycle) { s.failures, s.timer = s.failures+1, s.timer+1 },
			[]effWant{wArm(0)}},
		{one("campaigning"), "watch:vacancy", func(s *lifecycle) { s.state, s.timer = StateClaiming, s.timer+1 },
			wClaiming()},
		{one("campaigning"), "watch:other+expires", func(s *lifecycle) { s.timer++ }, []effWant{wArm(expiry)}},

		// Claiming, for a campaign.
		{one("claiming"), "stop", func(s *lifecycle) { s.then = exitStop }, nil},
		{one("claiming"), "resign", nil, []effWant{notLeader}},
		{one("claiming"), "claimed:won",
			func(s *lifecycle) { s.state, s.term, s.failures, s.leader = StateLeading, won, 0, won.leader() },
			[]effWant{wStart(won, false), wEmit(claimedEv(won, false))}},
		{one("claiming"), "claimed:queued",
			func(s *lifecycle) { s.state, s.term, s.failures, s.leader = StateQueued, won, 0, older },
			[]effWant{wQueue(won), wEmit(Event{Kind: EventClaimTaken, Latency: fxLatency, Leader: older, Queued: true})}},
		{one("claiming"), "claimed:taken",
			func(s *lifecycle) { s.state, s.failures, s.leader = StateCampaigning, 0, newer },
			[]effWant{wEmit(taken(newer))}},
		{one("claiming"), "claimed:taken+expires",
			func(s *lifecycle) { s.state, s.failures, s.leader, s.timer = StateCampaigning, 0, newer, s.timer+1 },
			[]effWant{wEmit(taken(newer)), wArm(expiry)}},
		// Refused with no holder: no one is reported leading (the leader
		// recorded is an open question: see openLeader).
		{one("claiming"), "claimed:refused",
			func(s *lifecycle) { s.state, s.failures, s.timer = StateCampaigning, 0, s.timer+1 },
			[]effWant{wEmit(taken(nil)), wArm(expiry)}},
		{one("claiming"), "claimed:session-expired",
			func(s *lifecycle) { s.state, s.failures, s.timer = StateCampaigning, s.failures+1, s.timer+1 },
			[]effWant{wEmit(failed(ErrSessionExpired)), wArm(0)}},
		{one("claiming"), "claimed:failed+term",
			func(s *lifecycle) { s.state, s.failures, s.timer = StateCampaigning, s.failures+1, s.timer+1 },
			[]effWant{wAbandon(unanswered), wEmit(failed(errClaim)), wArm(0)}},
		{one("claiming"), "claimed:failed",
			func(s *lifecycle) { s.state, s.failures, s.timer = StateCampaigning, s.failures+1, s.timer+1 },
			[]effWant{wEmit(failed(errClaim)), wArm(0)}},

		// Claiming while a Stop waits for the answer.
		{one("claiming:stop"), "resign", nil, []effWant{stopping}},
		{one("claiming:stop"), "claimed:won", func(s *lifecycle) { s.state, s.term = StateReleasing, won },
			[]effWant{wEmit(steppingDown(won)), wRelease(won)}},
		{one("claiming:stop"), "claimed:queued", func(s *lifecycle) { s.state, s.term, s.leader = StateReleasing, won, older },
			[]effWant{wEmit(steppingDown(won)), wRelease(won)}},
		{one("claiming:stop"), "claimed:taken", func(s *lifecycle) { s.state, s.failures, s.leader = StateStopped, 0, newer },
			[]effWant{wEmit(taken(newer)), wStopped()}},
		{one("claiming:stop"), "claimed:taken+expires", func(s *lifecycle) { s.state, s.failures, s.leader = StateStopped, 0, newer },
			[]effWant{wEmit(taken(newer)), wStopped()}},
		{one("claiming:stop"), "claimed:refused", func(s *lifecycle) { s.state, s.failures = StateStopped, 0 },
			[]effWant{wEmit(taken(nil)), wStopped()}},
		{one("claiming:stop"), "claimed:session-expired", to(StateStopped),
			[]effWant{wEmit(failed(ErrSessionExpired)), wStopped()}},
		{one("claiming:stop"), "claimed:failed+term", to(StateStopped),
			[]effWant{wAbandon(unanswered), wEmit(failed(errClaim)), wStopped()}},
		{one("claiming:stop"), "claimed:failed", to(StateStopped),
			[]effWant{wEmit(failed(errClaim)), wStopped()}},

		// Queued.
		{one("queued"), "stop", func(s *lifecycle) { s.state, s.then = StateReleasing, exitStop },
			[]effWant{wEmit(steppingDown(cur)), wRelease(cur)}},
		{one("queued"), "resign", nil, []effWant{notLeader}},
		{one("queued"), "session-lost", func(s *lifecycle) { s.state, s.term = StateClaiming, nil }, wClaiming()},
		{one("queued"), "watch:vacancy", func(s *lifecycle) { s.state, s.term = StateClaiming, nil },
			append([]effWant{wAbandon(cur)}, wClaiming()...)},
		{one("queued"), "watch:newer", func(s *lifecycle) { s.state, s.term = StateClaiming, nil },
			append([]effWant{wAbandon(cur)}, wClaiming()...)},
		{one("queued"), "watch:own", func(s *lifecycle) { s.state, s.confirmed, s.failures = StateLeading, true, 0 },
			[]effWant{wStart(cur, true), wEmit(claimedEv(cur, true))}},

		// Leading and Uncertain, confirmed by the watch or not.
		{leads, "stop", func(s *lifecycle) { s.state, s.then, s.lost = StateSteppingDown, exitStop, false },
			[]effWant{wCancel(cur, errStopping), wEmit(steppingDown(cur))}},
		{leads, "resign", func(s *lifecycle) {
			s.state, s.then, s.lost = StateSteppingDown, exitResign, false
			s.resigners = []chan error{resignReply}
		}, []effWant{wCancel(cur, errResigned), wEmit(steppingDown(cur))}},
		{leads, "renewed:not-owner", loses(true),
			[]effWant{wCancel(cur, ErrLost), wUntrack(cur), wEmit(lostEv(LossNotOwner, ErrLost))}},
		{leads, "deadline", loses(false),
			[]effWant{wCancel(cur, errDeadline), wEmit(lostEv(LossDeadline, errDeadline))}},
		{leads, "session-lost", loses(true),
			[]effWant{wCancel(cur, errSession), wUntrack(cur), wEmit(lostEv(LossSessionExpired, errSession))}},
		{leads, "watch:newer", loses(true),
			[]effWant{wCancel(cur, ErrLost), wUntrack(cur), wEmit(lostEv(LossSuperseded, ErrLost))}},
		{names("leading", "", ":unconfirmed"), "renewed:failed", to(StateUncertain),
			[]effWant{wEmit(on(cur, Event{Kind: EventUncertain, Err: errRenew}))}},
		{names("uncertain", "", ":unconfirmed"), "renewed:ok", to(StateLeading),
			[]effWant{wEmit(on(cur, Event{Kind: EventRecovered}))}},
		// Once the watch has shown the term, a vacancy or another holder
		// means the store no longer holds it; before, such an event
		// predates the claim.
		{confirmed, "watch:vacancy", loses(true),
			[]effWant{wCancel(cur, ErrLost), wUntrack(cur), wEmit(lostEv(LossNotOwner, ErrLost))}},
		{confirmed, "watch:older", loses(true),
			[]effWant{wCancel(cur, ErrLost), wUntrack(cur), wEmit(lostEv(LossSuperseded, ErrLost))}},
		{confirmed, "watch:other+expires", loses(true),
			[]effWant{wCancel(cur, ErrLost), wUntrack(cur), wEmit(lostEv(LossSuperseded, ErrLost))}},
		{unconfirmed, "watch:own", func(s *lifecycle) { s.confirmed = true }, nil},

		// SteppingDown.
		{join(sdCampaign, sdResign), "stop", func(s *lifecycle) { s.then = exitStop }, nil},
		{sdResign, "resign", func(s *lifecycle) { s.resigners = append(s.resigners, resignReply) }, nil},
		{sdCampaign, "resign", nil, []effWant{notLeader}},
		{join(sdStop, one("stepping-down:resign-then-stop")), "resign", nil, []effWant{stopping}},
		{sdAll, "renewed:not-owner", func(s *lifecycle) { s.gone = true }, []effWant{wUntrack(cur)}},
		{sdAll, "session-lost", func(s *lifecycle) { s.gone = true }, []effWant{wUntrack(cur)}},
		{sdNotGone, "watch:newer", func(s *lifecycle) { s.gone = true }, []effWant{wUntrack(cur)}},
		{sdNotLost, "deadline", func(s *lifecycle) { s.lost = true },
			[]effWant{wEmit(lostEv(LossDeadline, errDeadline))}},
		{sdAll, "overrun", nil, []effWant{wEmit(on(cur, Event{Kind: EventHandlerOverrun, Overrun: fxOverrun}))}},
		{sdNotGone, "handlers-done", to(StateReleasing), []effWant{wEmit(returned), wRelease(cur)}},
		{one("stepping-down:campaign,lost,gone"), "handlers-done", settles(StateCampaigning, 1, 1),
			[]effWant{wEmit(returned), wArm(0)}},
		{one("stepping-down:campaign,lost,gone,vacant"), "handlers-done", settles(StateClaiming, 1, 0),
			[]effWant{wEmit(returned), wClaim()}},
		{names("stepping-down:resign", ",gone", ",lost,gone"), "handlers-done", settles(StateResigned, 0, 1),
			[]effWant{wReply(nil, earlier), wEmit(returned), wArm(fxTTL)}},
		{names("stepping-down:stop", ",gone", ",lost,gone"), "handlers-done", settles(StateStopped, 0, 0),
			[]effWant{wEmit(returned), wStopped()}},

		// Releasing.
		{names("releasing:", "campaign", "campaign,vacant", "resign"), "stop", func(s *lifecycle) { s.then = exitStop }, nil},
		{one("releasing:resign"), "resign", func(s *lifecycle) { s.resigners = append(s.resigners, resignReply) }, nil},
		{names("releasing:", "campaign", "campaign,vacant"), "resign", nil, []effWant{notLeader}},
		{names("releasing:", "stop", "resign-then-stop"), "resign", nil, []effWant{stopping}},

		// Resigned.
		{one("resigned"), "stop", func(s *lifecycle) { s.state, s.timer = StateStopped, s.timer+1 },
			[]effWant{wEmit(stopped), wStopped()}},
		{one("resigned"), "resign", nil, []effWant{notLeader}},
		{one("resigned"), "timer:current", to(StateClaiming), wClaiming()},

		// Stopped.
		{one("stopped"), "resign", nil, []effWant{wReply(ErrStopped, resignReply)}},
	}
	for _, in := range []string{"watch:older", "watch:newer", "watch:other+expires"} {
		// Another candidate leads: campaign (join the line) at once.
		rows = append(rows, row{one("resigned"), in, func(s *lifecycle) { s.state, s.timer = StateClaiming, s.timer+1 },
			wClaiming()})
	}
	for _, r := range []struct {
		in  string
		err error
	}{{"released:ok", nil}, {"released:err", errRelease}} {
		// The release answered: the step-down goes where it was headed.
		rows = append(rows,
			row{one("releasing:campaign"), r.in, settles(StateCampaigning, 1, 1),
				[]effWant{wUntrack(cur), wEmit(released(r.err)), wArm(0)}},
			row{one("releasing:campaign,vacant"), r.in, settles(StateClaiming, 1, 0),
				[]effWant{wUntrack(cur), wEmit(released(r.err)), wClaim()}},
			row{one("releasing:resign"), r.in, settles(StateResigned, 0, 1),
				[]effWant{wUntrack(cur), wReply(r.err, earlier), wEmit(released(r.err)), wArm(fxTTL)}},
			row{one("releasing:stop"), r.in, settles(StateStopped, 0, 0),
				[]effWant{wUntrack(cur), wEmit(released(r.err)), wStopped()}},
			row{one("releasing:resign-then-stop"), r.in, settles(StateStopped, 0, 0),
				[]effWant{wUntrack(cur), wReply(r.err, earlier), wEmit(released(r.err)), wStopped()}},
		)
	}
	return rows
}

type cellKey struct{ state, input string }

// openLeader lists the cells where the leader the candidate records is an
// open question: TestStep checks everything else in them, but not the
// recorded leader nor an EventLeaderChanged.
var openLeader = func() map[cellKey]string {
	open := map[cellKey]string{}
	for _, st := range []string{"claiming", "claiming:stop"} {
		open[cellKey{st, "claimed:refused"}] = "a refusal with no holder keeps the holder seen before, " +
			"although the store says no one holds the election"
	}
	for _, st := range unconfirmed {
		for _, in := range []string{"watch:vacancy", "watch:older", "watch:other+expires"} {
			open[cellKey{st, in}] = "a watch event older than the claim replaces the candidate's own term " +
				"as the leader, and is reported, while the candidate leads"
		}
	}
	return open
}()

// table indexes the rows by cell, and fails on a row that names no
// fixture or input, or a cell two rows claim.
func table(t *testing.T) map[cellKey]row {
	t.Helper()
	states, inputs := map[string]bool{}, map[string]bool{}
	for _, fx := range fixtures() {
		states[fx.name] = true
	}
	for _, st := range stimuli() {
		inputs[st.name] = true
	}
	byCell := map[cellKey]row{}
	for _, r := range tableRows() {
		if !inputs[r.in] {
			t.Fatalf("table: no input %q", r.in)
		}
		for _, s := range r.on {
			if !states[s] {
				t.Fatalf("table: no state %q (input %s)", s, r.in)
			}
			k := cellKey{s, r.in}
			if _, dup := byCell[k]; dup {
				t.Fatalf("table: two rows for state %s, input %s", s, r.in)
			}
			byCell[k] = r
		}
	}
	return byCell
}

// expect returns the lifecycle and effects the table wants from pre and
// in: the row's, or no change. A watch event, in any state but Stopped,
// also records the leader it shows, and reports a failure first and a
// new leader last.
func expect(byCell map[cellKey]row, fx fixture, st stimulus, in input) (lifecycle, []effWant) {
	pre := fx.s
	next := clone(pre)
	r := byCell[cellKey{fx.name, st.name}]
	var want []effWant
	watch := in.kind == inWatch && pre.state != StateStopped
	if watch && in.watch.Err != nil {
		want = append(want, wEmit(Event{Kind: EventWatchFailed, Err: in.watch.Err}))
	}
	if watch && in.watch.Err == nil {
		next.leader = in.watch.Leader
	}
	if r.next != nil {
		r.next(&next)
	}
	want = append(want, r.want...)
	if watch && in.watch.Err == nil && !sameLeader(pre.leader, in.watch.Leader) {
		want = append(want, wEmit(Event{Kind: EventLeaderChanged, Leader: in.watch.Leader}))
	}
	return next, want
}

// TestStep feeds every input to every state and checks the next lifecycle
// and the effects against the table.
func TestStep(t *testing.T) {
	byCell := table(t)
	for _, fx := range fixtures() {
		t.Run("state="+fx.name, func(t *testing.T) {
			for _, st := range stimuli() {
				t.Run("input="+st.name, func(t *testing.T) {
					fx := fixtureNamed(fx.name)
					in := st.in(fx.s)
					wantNext, want := expect(byCell, fx, st, in)
					next, got := stepFrom(fx.s, in)
					where := fmt.Sprintf("state %s, input %s", fx.name, st.name)
					if _, open := openLeader[cellKey{fx.name, st.name}]; open {
						wantNext.leader = next.leader
						want, got = dropLeaderChanged(want, got)
					}
					for _, d := range lifecycleDiff(next, wantNext) {
						t.Errorf("%s: next %s", where, d)
					}
					if len(got) != len(want) {
						t.Fatalf("%s: effects %s, want %d effects", where, describeAll(got), len(want))
					}
					for i := range got {
						if d := want[i].mismatch(got[i], next); d != "" {
							t.Errorf("%s: effect %d %s: %s", where, i, describe(got[i]), d)
						}
					}
				})
			}
		})
	}
}

// dropLeaderChanged leaves out the EventLeaderChanged emits.
func dropLeaderChanged(want []effWant, got []effect) ([]effWant, []effect) {
	var w []effWant
	var g []effect
	for _, e := range want {
		if e.kind != effEmit || e.ev.Kind != EventLeaderChanged {
			w = append(w, e)
		}
	}
	for _, e := range got {
		if e.kind != effEmit || e.ev.Kind != EventLeaderChanged {
			g = append(g, e)
		}
	}
	return w, g
}

func fixtureNamed(name string) fixture {
	for _, fx := range fixtures() {
		if fx.name == name {
			return fx
		}
	}
	panic("no fixture " + name)
}

// A cell is one step: from pre, with in, to next and effs.
type cell struct {
	where string // "state X, input Y"
	pre   lifecycle
	in    input
	next  lifecycle
	effs  []effect
}

// cells steps every fixture with every input.
func cells() []cell {
	var out []cell
	for _, fx := range fixtures() {
		for _, st := range stimuli() {
			in := st.in(fx.s)
			next, effs := stepFrom(fx.s, in)
			out = append(out, cell{fmt.Sprintf("state %s, input %s", fx.name, st.name), fx.s, in, next, effs})
		}
	}
	return out
}

// checks are the properties of a single step; TestStep* run each over
// every cell of the table, and TestStepStop and TestStepResign over every
// step of their runs.
var checks = []struct {
	name  string
	check func(c cell) []string
}{
	{"start-term", checkStartTerm},
	{"claim-kept", checkClaimKept},
	{"events", checkEvents},
	{"timer", checkTimer},
}

func report(t *testing.T, property string, c cell, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Errorf("%s: %s: %s (effects %s)", c.where, property, p, describeAll(c.effs))
	}
}

// checkCells runs the named check over every cell of the table.
func checkCells(t *testing.T, property string) {
	t.Helper()
	for _, ch := range checks {
		if ch.name != property {
			continue
		}
		for _, c := range cells() {
			report(t, property, c, ch.check(c))
		}
		return
	}
	t.Fatalf("no check %q", property)
}

func leading(s State) bool { return s == StateLeading || s == StateUncertain }

// checkStartTerm: invariant 2 as far as step decides it. A term starts
// (deadline, renewal, handlers) on the transition into StateLeading and
// never otherwise; and every transition into Leading from a state that
// did not lead starts its term.
func checkStartTerm(c cell) []string {
	var bad []string
	starts := 0
	for _, e := range c.effs {
		if e.kind != effStartTerm {
			continue
		}
		starts++
		if leading(c.pre.state) || c.next.state != StateLeading {
			bad = append(bad, fmt.Sprintf("start-term from %v to %v", c.pre.state, c.next.state))
		}
		if e.term == nil || e.term != c.next.term {
			bad = append(bad, fmt.Sprintf("start-term of %s, but the next term is %s", termName(e.term), termName(c.next.term)))
		}
	}
	if starts > 1 {
		bad = append(bad, fmt.Sprintf("%d start-terms", starts))
	}
	if starts == 0 && c.next.state == StateLeading && !leading(c.pre.state) {
		bad = append(bad, fmt.Sprintf("into Leading from %v without start-term", c.pre.state))
	}
	return bad
}

// checkClaimKept: invariant 1 as far as step decides it. A term whose
// handlers are cancelled in this step is not released, abandoned or
// untracked in it (untracked only if the store is known not to hold it).
// A claim is released only once the handlers of its term have returned,
// or if its handlers never started (won or in line while stopping);
// abandoned only if they never started; untracked only after its release
// was answered, or once the store is known not to hold it.
func checkClaimKept(c cell) []string {
	var bad []string
	cancelled := map[*term]bool{}
	for _, e := range c.effs {
		if e.kind == effCancel {
			cancelled[e.term] = true
		}
	}
	goneNow := func(t *term) bool { return c.next.gone && c.next.term == t }
	for _, e := range c.effs {
		t := e.term
		switch e.kind {
		case effRelease:
			afterHandlers := c.in.kind == inHandlersDone && c.pre.state == StateSteppingDown && t == c.pre.term
			wonStopping := c.in.kind == inClaimed && c.pre.state == StateClaiming && c.pre.then == exitStop && t == c.in.claim.term
			outOfLine := c.in.kind == inStop && c.pre.state == StateQueued && t == c.pre.term
			if cancelled[t] || !(afterHandlers || wonStopping || outOfLine) {
				bad = append(bad, fmt.Sprintf("release of %s from %v on %v", termName(t), c.pre.state, c.in.kind))
			}
		case effAbandon:
			unstarted := (c.pre.state == StateClaiming && c.in.kind == inClaimed && t == c.in.claim.term) ||
				(c.pre.state == StateQueued && t == c.pre.term)
			if cancelled[t] || !unstarted {
				bad = append(bad, fmt.Sprintf("abandon of %s from %v on %v", termName(t), c.pre.state, c.in.kind))
			}
		case effUntrack:
			released := c.in.kind == inReleased && c.pre.state == StateReleasing && t == c.pre.term
			if !(released && !cancelled[t]) && !goneNow(t) {
				bad = append(bad, fmt.Sprintf("untrack of %s, held by the store as far as the candidate knows", termName(t)))
			}
		}
	}
	return bad
}

// checkEvents: invariant 4 as far as step decides it. A step that changes
// the state emits at least one event; every
// event carries the state after the step; no event or error carries a
// whole owner token.
func checkEvents(c cell) []string {
	var bad []string
	emits := 0
	for _, e := range c.effs {
		if e.err != nil {
			bad = append(bad, tokenIn("effect error", e.err.Error())...)
		}
		if e.kind != effEmit {
			continue
		}
		emits++
		if e.ev.State != c.next.state {
			bad = append(bad, fmt.Sprintf("event %v has State %v, the step ends in %v", e.ev.Kind, e.ev.State, c.next.state))
		}
		if len(e.ev.TokenPrefix) > len(TokenPrefix(strings.Repeat("x", 64))) {
			bad = append(bad, fmt.Sprintf("event %v has TokenPrefix %q", e.ev.Kind, e.ev.TokenPrefix))
		}
		bad = append(bad, tokenIn("event TokenPrefix", e.ev.TokenPrefix)...)
		if e.ev.Err != nil {
			bad = append(bad, tokenIn("event Err", e.ev.Err.Error())...)
		}
	}
	if c.next.state != c.pre.state && emits == 0 {
		bad = append(bad, fmt.Sprintf("from %v to %v with no event", c.pre.state, c.next.state))
	}
	return bad
}

func tokenIn(what, s string) []string {
	for _, tok := range fxTokens {
		if strings.Contains(s, tok) {
			return []string{fmt.Sprintf("%s %q carries a whole owner token", what, s)}
		}
	}
	return nil
}

// checkTimer: generations only grow; arming takes a new one, which the
// armed effect carries with the failure count; at most one arm a step.
func checkTimer(c cell) []string {
	var bad []string
	if c.next.timer < c.pre.timer {
		bad = append(bad, fmt.Sprintf("timer generation went back from %d to %d", c.pre.timer, c.next.timer))
	}
	arms := 0
	for _, e := range c.effs {
		if e.kind != effArm {
			continue
		}
		arms++
		if e.gen != c.next.timer || e.gen <= c.pre.timer {
			bad = append(bad, fmt.Sprintf("arm with generation %d: before %d, after %d", e.gen, c.pre.timer, c.next.timer))
		}
		if e.failures != c.next.failures {
			bad = append(bad, fmt.Sprintf("arm with %d failures, the state has %d", e.failures, c.next.failures))
		}
	}
	if arms > 1 {
		bad = append(bad, fmt.Sprintf("%d arms in one step", arms))
	}
	return bad
}

// TestStepStartsTermsOnlyIntoLeading checks invariant 2 over the table.
func TestStepStartsTermsOnlyIntoLeading(t *testing.T) { checkCells(t, "start-term") }

// TestStepKeepsClaimsWhileHandlersRun checks invariant 1 over the table.
func TestStepKeepsClaimsWhileHandlersRun(t *testing.T) { checkCells(t, "claim-kept") }

// TestStepEvents checks the events of every cell of the table.
func TestStepEvents(t *testing.T) { checkCells(t, "events") }

// TestStepTimerGenerations checks the timer generations of every cell,
// and that a step from Campaigning or Resigned to Claiming makes void
// every timer armed before it, but the one whose firing it is: such a
// timer stays void in Claiming and after the claim's answer brings the
// candidate back to Campaigning.
func TestStepTimerGenerations(t *testing.T) {
	checkCells(t, "timer")
	into := map[State]int{}
	for _, c := range cells() {
		if (c.pre.state != StateCampaigning && c.pre.state != StateResigned) || c.next.state != StateClaiming {
			continue
		}
		into[c.pre.state]++
		back, _ := stepFrom(c.next, input{kind: inClaimed, claim: claimResult{taken: &TakenError{Holder: *newer}}})
		if back.state != StateCampaigning {
			t.Fatalf("%s: a taken claim leads to %v, not Campaigning", c.where, back.state)
		}
		for gen := uint64(0); gen <= c.pre.timer; gen++ {
			if c.in.kind == inTimer && gen == c.in.gen {
				continue // the timer that fired: it fires once
			}
			for _, s := range []struct {
				name string
				s    lifecycle
			}{{"claiming", c.next}, {"campaigning again", back}} {
				next, effs := stepFrom(s.s, input{kind: inTimer, gen: gen})
				if d := lifecycleDiff(next, s.s); len(d) > 0 || len(effs) > 0 {
					t.Errorf("%s: a timer of generation %d, armed before, still acts once %s: %v, effects %s",
						c.where, gen, s.name, d, describeAll(effs))
				}
			}
		}
	}
	if into[StateCampaigning] == 0 || into[StateResigned] == 0 {
		t.Fatalf("the table has no step into Claiming from Campaigning or Resigned: %v", into)
	}
}

// TestStepIgnoresStaleInputs: an input about a term other than the
// current one (an earlier term of ours, or none), and a timer of an older
// generation, change nothing in any state.
func TestStepIgnoresStaleInputs(t *testing.T) {
	stale := append(staleInputs(), timerInputs[1])
	for _, fx := range fixtures() {
		for _, st := range stale {
			next, effs := stepFrom(fx.s, st.in(fx.s))
			for _, d := range lifecycleDiff(next, fx.s) {
				t.Errorf("state %s, input %s: next %s", fx.name, st.name, d)
			}
			if len(effs) > 0 {
				t.Errorf("state %s, input %s: effects %s", fx.name, st.name, describeAll(effs))
			}
		}
	}
}

// TestStepIsPure: the same step twice gives the same result, and leaves
// the lifecycle it was given as it was.
func TestStepIsPure(t *testing.T) {
	for _, fx := range fixtures() {
		for _, st := range stimuli() {
			pre := clone(fx.s)
			in := st.in(pre)
			next1, effs1 := step(pre, in)
			next2, effs2 := step(pre, in)
			where := fmt.Sprintf("state %s, input %s", fx.name, st.name)
			if d := lifecycleDiff(pre, fx.s); len(d) > 0 {
				t.Errorf("%s: the input lifecycle changed: %v", where, d)
			}
			if d := lifecycleDiff(next1, next2); len(d) > 0 {
				t.Errorf("%s: two steps differ: %v", where, d)
			}
			if describeAll(effs1) != describeAll(effs2) {
				t.Errorf("%s: two steps differ: %s and %s", where, describeAll(effs1), describeAll(effs2))
			}
		}
	}
}

// A run steps a lifecycle through the inputs a test gives it, then
// through the answers to the work its effects leave outstanding, as the
// driver would: claim answers (always answer), handlers returning (after
// a cancel) and release answers (releaseErr). Every step is checked
// against checks.
type run struct {
	t          *testing.T
	where      string
	s          lifecycle
	answer     claimResult
	releaseErr error
	pending    []input
	steps      []cell
}

// newRun starts a run from fx, with the work fx was left waiting for
// outstanding: the claim in flight in Claiming, the handlers still
// running in SteppingDown, the release in flight in Releasing.
func newRun(t *testing.T, fx fixture, answer claimResult, releaseErr error) *run {
	r := &run{t: t, where: "state " + fx.name, s: clone(fx.s), answer: answer, releaseErr: releaseErr}
	switch fx.s.state {
	case StateClaiming:
		r.pending = append(r.pending, input{kind: inClaimed, claim: answer})
	case StateSteppingDown:
		r.pending = append(r.pending, input{kind: inHandlersDone, term: fx.s.term})
	case StateReleasing:
		r.pending = append(r.pending, input{kind: inReleased, term: fx.s.term, err: releaseErr})
	}
	return r
}

func (r *run) feed(name string, in input) []effect {
	r.t.Helper()
	next, effs := stepFrom(r.s, in)
	c := cell{fmt.Sprintf("%s, input %s", r.where, name), r.s, in, next, effs}
	r.where += ", input " + name
	for _, ch := range checks {
		report(r.t, ch.name, c, ch.check(c))
	}
	r.steps = append(r.steps, c)
	r.s = next
	for _, e := range effs {
		switch e.kind {
		case effClaim:
			r.pending = append(r.pending, input{kind: inClaimed, claim: r.answer})
		case effCancel:
			r.pending = append(r.pending, input{kind: inHandlersDone, term: e.term})
		case effRelease:
			r.pending = append(r.pending, input{kind: inReleased, term: e.term, err: r.releaseErr})
		}
	}
	return effs
}

// settle feeds the outstanding answers, in order, at most max of them; it
// reports whether none is left.
func (r *run) settle(max int) bool {
	r.t.Helper()
	for ; len(r.pending) > 0 && max > 0; max-- {
		in := r.pending[0]
		r.pending = r.pending[1:]
		r.feed(in.kind.String(), in)
	}
	return len(r.pending) == 0
}

// TestStepStop: from every state but Stopped, a Stop (or two) leads to
// StateStopped once the outstanding work is answered, whatever the
// answers: no term starts and no claim is made after it, every claim the
// candidate held, had in line or may have made is released, known gone
// or left to the elector (invariant 3), and the stop is reported. Once
// Stopped, every input but a Resign changes nothing and produces nothing,
// and a Resign gets ErrStopped.
func TestStepStop(t *testing.T) {
	for _, fx := range fixtures() {
		if fx.s.state == StateStopped {
			continue
		}
		answers := claimOutcomes[:1] // no claim in flight: the answer is never asked for
		if fx.s.state == StateClaiming {
			answers = claimOutcomes
		}
		for _, answer := range answers {
			for _, releaseErr := range []error{nil, errRelease} {
				for _, stops := range []int{1, 2} {
					r := newRun(t, fx, answer.in(fx.s).claim, releaseErr)
					r.where += fmt.Sprintf(" (claims %s, releases with %v)", answer.name, releaseErr)
					// A claim the candidate had in line or held, or may
					// have made: each must be settled by the stop.
					settled, claims := map[*term]bool{}, map[*term]bool{}
					if held := fx.s.term; held != nil {
						claims[held] = true
						settled[held] = fx.s.gone || fx.s.state == StateReleasing // untracked, or its release in flight
					}
					for range stops {
						r.feed("stop", input{kind: inStop})
					}
					if !r.settle(10) {
						t.Fatalf("%s: work still outstanding after 10 answers: %v", r.where, r.pending)
					}
					if r.s.state != StateStopped {
						t.Errorf("%s: ends in %v, not Stopped", r.where, r.s.state)
						continue
					}
					reported := false
					for _, c := range r.steps {
						if c.next.term != nil {
							claims[c.next.term] = true
						}
						if c.in.kind == inClaimed && c.in.claim.term != nil {
							claims[c.in.claim.term] = true
						}
						for _, e := range c.effs {
							switch e.kind {
							case effStartTerm, effClaim, effQueue, effArm:
								t.Errorf("%s: %s after Stop", c.where, describe(e))
							case effRelease, effAbandon, effUntrack:
								settled[e.term] = true
							case effEmit:
								reported = reported || e.ev.State == StateStopped
							}
						}
					}
					for cl := range claims {
						if !settled[cl] {
							t.Errorf("%s: stopped, but the claim %s was neither released, known gone nor abandoned",
								r.where, termName(cl))
						}
					}
					if !reported {
						t.Errorf("%s: stopped with no event in StateStopped", r.where)
					}
					checkStoppedInert(t, r.where, r.s)
				}
			}
		}
	}
}

// checkStoppedInert feeds every input to the stopped s: only a Resign
// gets anything, a reply with ErrStopped.
func checkStoppedInert(t *testing.T, where string, s lifecycle) {
	t.Helper()
	for _, st := range stimuli() {
		in := st.in(s)
		next, effs := stepFrom(s, in)
		for _, d := range lifecycleDiff(next, s) {
			t.Errorf("%s; stopped, then input %s: next %s", where, st.name, d)
		}
		want := 0
		if in.kind == inResign {
			want = 1
		}
		if len(effs) != want {
			t.Errorf("%s; stopped, then input %s: effects %s", where, st.name, describeAll(effs))
			continue
		}
		if want == 1 {
			if d := wReply(ErrStopped, resignReply).mismatch(effs[0], next); d != "" {
				t.Errorf("%s; stopped, then input %s: %s", where, st.name, d)
			}
		}
	}
}

// TestStepResign: in every state, a Resign (alone, followed by a Stop, or
// after one) gets exactly one reply by the time the outstanding work is
// answered, and so does every Resign the state already waited with. An
// immediate reply says ErrNotLeader or ErrStopped; a later one is the
// release's answer.
func TestStepResign(t *testing.T) {
	taken := claimResult{taken: &TakenError{Holder: *newer}, latency: fxLatency}
	for _, fx := range fixtures() {
		for _, seq := range [][]string{{"resign"}, {"resign", "stop"}, {"stop", "resign"}} {
			for _, releaseErr := range []error{nil, errRelease} {
				r := newRun(t, fx, taken, releaseErr)
				r.where += fmt.Sprintf(" (releases with %v)", releaseErr)
				var resignedAt int
				for _, name := range seq {
					if name == "resign" {
						resignedAt = len(r.steps)
						r.feed(name, input{kind: inResign, reply: resignReply})
					} else {
						r.feed(name, input{kind: inStop})
					}
				}
				if !r.settle(10) {
					t.Fatalf("%s: work still outstanding after 10 answers: %v", r.where, r.pending)
				}
				waiting := append([]chan error{resignReply}, fx.s.resigners...)
				for _, ch := range waiting {
					var at []int
					var errs []error
					for i, c := range r.steps {
						for _, e := range c.effs {
							for _, to := range e.replies {
								if e.kind == effReply && to == ch {
									at, errs = append(at, i), append(errs, e.err)
								}
							}
						}
					}
					if len(at) != 1 {
						t.Errorf("%s: %s got %d replies, want 1", r.where, chanName(ch), len(at))
						continue
					}
					immediate := ch == resignReply && at[0] == resignedAt
					switch {
					case immediate && !errMatches(errs[0], oneOf{ErrNotLeader, ErrStopped}):
						t.Errorf("%s: %s answered at once with %v, want ErrNotLeader or ErrStopped", r.where, chanName(ch), errs[0])
					case !immediate && errs[0] != nil && errs[0] != releaseErr:
						t.Errorf("%s: %s answered with %v, want the release's answer %v", r.where, chanName(ch), errs[0], releaseErr)
					}
				}
			}
		}
	}
}
