// Package history records what the leaders of elections did, as their
// handlers saw it, and checks the record for the library's promises. The
// seeded simulation (internal/sim), the conformance suite, and the tests of
// the CLI and of the robustness suite share it.
//
// A Recorder takes handler runs (from the handler's start to its return, or
// to its process's crash), the events of each process (election.Event), the
// store's own view of who held what when (holds), fenced writes, and the
// faults injected. Check then reports every violation of:
//
//   - exclusion: no two handlers of one election run at the same time,
//     unless the earlier one's term had passed its deadline and its overrun
//     was reported in time (EventHandlerOverrun, or an
//     EventHandlersReturned late by no more than Bounds.OverrunWithin);
//   - release: a claim outlives its handlers: its own elector never ends
//     it (releases it, ends its session) while a handler of its term runs;
//   - fences: each term of an election has a greater fence than the one
//     before, as handlers and as the store saw them;
//   - no zombies: no claim stays in the store longer than a slack after its
//     candidate stopped (its handlers returned and its release was
//     attempted), counted from the end of the last fault that could have
//     kept the release from reaching the store;
//   - liveness: once faults have healed and the last lingering handler has
//     returned, some live candidate of each election leads within a bound.
//
// Times are the real times of the world the test runs in (the synctest
// bubble's clock in the simulation), never the skewed clocks of the
// processes: a process's event times are mapped back with its ToReal.
package history

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// Recorder is a history being recorded. It is safe for concurrent use.
type Recorder struct {
	now func() time.Time

	mu        sync.Mutex
	runs      []*Run
	events    []Event
	holds     []Hold
	writes    []Write
	faults    []Fault
	crashed   map[string]time.Time
	closed    map[string]time.Time
	processes map[string]Process
}

// Process is one elector's process as the recorder knows it.
type Process struct {
	// Name names the process in reports.
	Name string
	// ToReal maps a time read on the process's clock (such as Event.Time)
	// to real time. Nil means the process's clock is real time.
	ToReal func(time.Time) time.Time
}

// Run is one handler's run: from its start to its return.
type Run struct {
	Process, Election, Candidate string
	Fence                        uint64
	Start, End                   time.Time // End zero while running
	// Crashed is set when the run ended because its process crashed; End
	// is then the crash time.
	Crashed bool
	rec     *Recorder
}

// Event is an election.Event with the real time it was delivered at and
// the process it happened in.
type Event struct {
	election.Event
	Process string
	At      time.Time
}

// Hold is one interval during which the store held an election for one
// candidate (by ID) under one fence.
type Hold struct {
	Election, Holder string
	Fence            uint64
	From, To         time.Time // To zero while held
	// Released is set when the holder's own elector ended the hold (a
	// release by token, or the end of its session), as opposed to the
	// store expiring it or losing it.
	Released bool
}

// Write is one write to a fenced sink.
type Write struct {
	Election, Writer string
	Fence            uint64
	At               time.Time
	Accepted         bool
}

// Fault is one injected fault. Process is empty for a fault of the store
// itself (a pause, a stop), which affects every process.
type Fault struct {
	Process, What string
	From, To      time.Time // To zero while active
}

// New returns an empty Recorder reading real time from now.
func New(now func() time.Time) *Recorder {
	return &Recorder{now: now, crashed: map[string]time.Time{}, closed: map[string]time.Time{}, processes: map[string]Process{}}
}

// AddProcess registers a process.
func (r *Recorder) AddProcess(p Process) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.processes[p.Name] = p
}

// Begin records the start of a handler's run in process of the term t, and
// returns the run, whose Return the handler calls as it returns.
func (r *Recorder) Begin(process string, t election.Term) *Run {
	run := &Run{Process: process, Election: t.Election, Candidate: t.ID, Fence: t.Fence, Start: r.now(), rec: r}
	r.mu.Lock()
	defer r.mu.Unlock()
	if at, dead := r.crashed[process]; dead {
		run.Start, run.End, run.Crashed = at, at, true
	}
	r.runs = append(r.runs, run)
	return run
}

// Return records that the run's handler returned. A run whose process
// crashed ended at the crash.
func (run *Run) Return() {
	r := run.rec
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if run.End.IsZero() {
		run.End = now
	}
}

// Running reports whether the run's handler still runs (and its process is
// alive).
func (run *Run) Running() bool {
	run.rec.mu.Lock()
	defer run.rec.mu.Unlock()
	return run.End.IsZero()
}

// OnEvent returns an election.Config.OnEvent hook that records process's
// events.
func (r *Recorder) OnEvent(process string) func(election.Event) {
	return func(ev election.Event) {
		// At is when the event was delivered, on real time: OnEvent runs
		// just after the fact (within the same instant of fake time).
		now := r.now()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.events = append(r.events, Event{Event: ev, Process: process, At: now})
	}
}

// Crash records that process died now: its handlers' runs end now (their
// goroutines may go on in a test, but a dead process writes nothing).
func (r *Recorder) Crash(process string) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.crashed[process] = now
	for _, run := range r.runs {
		if run.Process == process && run.End.IsZero() {
			run.End, run.Crashed = now, true
		}
	}
}

// Closing records that process began to close its elector now. A claim
// of one of its candidates that could still be on its way out (within
// Bounds.ZombieSlack of the candidate's stop) may then outlive the
// candidate by Bounds.ClosedSlack more: if its last release fails, the
// elector does not retry it, and it expires with the session.
func (r *Recorder) Closing(process string) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.closed[process]; !ok {
		r.closed[process] = now
	}
}

// Crashed reports whether process has crashed.
func (r *Recorder) Crashed(process string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, dead := r.crashed[process]
	return dead
}

// Write records a write to a fenced sink by the run's handler, and
// reports whether the sink accepted it: it refuses a fence lower than the
// highest it has accepted for the election, as a store that checks fences
// does. Writes of a crashed process are dropped.
func (r *Recorder) Write(run *Run) bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dead := r.crashed[run.Process]; dead {
		return false
	}
	var highest uint64
	for _, w := range r.writes {
		if w.Election == run.Election && w.Accepted && w.Fence > highest {
			highest = w.Fence
		}
	}
	w := Write{Election: run.Election, Writer: run.Candidate, Fence: run.Fence, At: now, Accepted: run.Fence >= highest}
	r.writes = append(r.writes, w)
	return w.Accepted
}

// Fault records the start of a fault and returns a function that records
// its end.
func (r *Recorder) Fault(process, what string) (heal func()) {
	r.mu.Lock()
	i := len(r.faults)
	r.faults = append(r.faults, Fault{Process: process, What: what, From: r.now()})
	r.mu.Unlock()
	return func() {
		now := r.now()
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.faults[i].To.IsZero() {
			r.faults[i].To = now
		}
	}
}

// SetHolds gives the recorder the store's own view of who held what when.
func (r *Recorder) SetHolds(holds []Hold) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holds = append([]Hold(nil), holds...)
}

// Runs returns a copy of the runs recorded.
func (r *Recorder) Runs() []Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Run, len(r.runs))
	for i, run := range r.runs {
		out[i] = *run
		out[i].rec = nil
	}
	return out
}

// Events returns a copy of the events recorded.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Writes returns a copy of the writes recorded.
func (r *Recorder) Writes() []Write {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Write(nil), r.writes...)
}

// Violation is one broken promise.
type Violation struct {
	// Property is "exclusion", "release", "fence", "zombie" or "liveness".
	Property string
	// Detail says what happened, with the election, candidates, fences
	// and times concerned.
	Detail string
}

func (v Violation) String() string { return v.Property + ": " + v.Detail }

// Bounds are the timing the checks allow.
type Bounds struct {
	// ZombieSlack is how long after a candidate stopped (counted from the
	// end of the last fault that could have kept its release from the
	// store) the store may still hold its claim: a renew interval and the
	// operation timeouts.
	ZombieSlack time.Duration
	// ClosedSlack is the more a claim may outlive its stopped candidate
	// when the candidate's elector began to close within ZombieSlack of
	// the stop (counted as ZombieSlack is), counted from the Closing: a TTL
	// and the store's expiry lag.
	ClosedSlack time.Duration
	// Healed is when every fault had ended and the world was quiet. Zero
	// skips the liveness check.
	Healed time.Time
	// LeadWithin is how soon after Healed (or after the last handler that
	// outlived Healed returned) some live candidate of each election must
	// lead.
	LeadWithin time.Duration
	// OverrunWithin is how soon after a term's deadline its overrun must be
	// reported to excuse an overlap: an EventHandlerOverrun comes
	// DriftMargin/2 after the deadline, so a late EventHandlersReturned,
	// which may come much later, counts only if it is within this. Zero
	// accepts a report at any time.
	OverrunWithin time.Duration
	// End is when the recording ended.
	End time.Time
	// Live maps each election to the candidates (by ID) that were running
	// at the end, neither stopped nor crashed; liveness is checked only
	// for elections with one.
	Live map[string][]string
}

// Check returns every violation in the history, in a stable order.
func (r *Recorder) Check(b Bounds) []Violation {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Violation
	out = append(out, r.checkExclusion(b)...)
	out = append(out, r.checkReleases()...)
	out = append(out, r.checkFences()...)
	out = append(out, r.checkZombies(b)...)
	if !b.Healed.IsZero() {
		out = append(out, r.checkLiveness(b)...)
	}
	return out
}

func (r *Recorder) runsByElection() map[string][]*Run {
	by := map[string][]*Run{}
	for _, run := range r.runs {
		by[run.Election] = append(by[run.Election], run)
	}
	for _, runs := range by {
		sort.SliceStable(runs, func(i, j int) bool { return runs[i].Start.Before(runs[j].Start) })
	}
	return by
}

// overrunReported returns the real time of the deadline of the term
// (name, candidate, fence) as reported by an overrun, and whether one
// was reported.
func (r *Recorder) overrunReported(name, candidate string, fence uint64, within time.Duration) (time.Time, bool) {
	for _, ev := range r.events {
		if ev.Election != name || ev.Candidate != candidate || ev.Fence != fence {
			continue
		}
		late := ev.Kind == election.EventHandlerOverrun || (ev.Kind == election.EventHandlersReturned && ev.Overrun > 0)
		if !late {
			continue
		}
		deadline := ev.Time.Add(-ev.Overrun)
		if p, ok := r.processes[ev.Process]; ok && p.ToReal != nil {
			deadline = p.ToReal(deadline)
		}
		if within > 0 && ev.Overrun > within {
			continue // reported too late
		}
		return deadline, true
	}
	return time.Time{}, false
}

func (r *Recorder) checkExclusion(bo Bounds) []Violation {
	var out []Violation
	by := r.runsByElection()
	for _, name := range sortedKeys(by) {
		runs := by[name]
		for i, a := range runs {
			for _, b := range runs[i+1:] {
				if a.Fence == b.Fence && a.Candidate == b.Candidate {
					continue // two handlers of one term
				}
				if !a.End.IsZero() && !a.End.After(b.Start) {
					continue
				}
				deadline, reported := r.overrunReported(name, a.Candidate, a.Fence, bo.OverrunWithin)
				if reported && !deadline.After(b.Start) {
					continue // the earlier handler overran its term, and said so
				}
				why := "no overrun reported"
				if reported {
					why = fmt.Sprintf("overrun reported, but its deadline %s was after the later start", stamp(deadline))
				}
				out = append(out, Violation{"exclusion", fmt.Sprintf(
					"election %q: %s (fence %d, %s..%s) still ran when %s (fence %d) started at %s: %s",
					name, a.Candidate, a.Fence, stamp(a.Start), stamp(a.End), b.Candidate, b.Fence, stamp(b.Start), why)})
			}
		}
	}
	return out
}

// checkReleases: the claim outlives its handlers. No hold may be ended by
// its own elector (a release, the end of its session) while a handler of
// its term still runs; only the store's own expiry may end it then.
func (r *Recorder) checkReleases() []Violation {
	var out []Violation
	for _, h := range r.holds {
		if !h.Released {
			continue
		}
		for _, run := range r.runs {
			if run.Election == h.Election && run.Candidate == h.Holder && run.Fence == h.Fence && !run.Crashed &&
				(run.End.IsZero() || run.End.After(h.To)) {
				out = append(out, Violation{"release", fmt.Sprintf("election %q: %s released its claim (fence %d) at %s while its handler ran (%s..%s)",
					h.Election, h.Holder, h.Fence, stamp(h.To), stamp(run.Start), stamp(run.End))})
			}
		}
	}
	return out
}

func (r *Recorder) checkFences() []Violation {
	var out []Violation
	by := r.runsByElection()
	for _, name := range sortedKeys(by) {
		runs := by[name]
		var prev *Run
		for _, run := range runs {
			if prev != nil && run.Fence < prev.Fence || prev != nil && run.Fence == prev.Fence && run.Candidate != prev.Candidate {
				out = append(out, Violation{"fence", fmt.Sprintf("election %q: %s started at %s with fence %d after %s's fence %d",
					name, run.Candidate, stamp(run.Start), run.Fence, prev.Candidate, prev.Fence)})
			}
			if prev == nil || run.Fence > prev.Fence {
				prev = run
			}
		}
	}
	holds := map[string][]Hold{}
	for _, h := range r.holds {
		holds[h.Election] = append(holds[h.Election], h)
	}
	for _, name := range sortedKeys(holds) {
		hs := holds[name]
		sort.SliceStable(hs, func(i, j int) bool { return hs[i].From.Before(hs[j].From) })
		for i := 1; i < len(hs); i++ {
			if hs[i].Fence <= hs[i-1].Fence {
				out = append(out, Violation{"fence", fmt.Sprintf("election %q: the store gave %s fence %d at %s after %s's fence %d",
					name, hs[i].Holder, hs[i].Fence, stamp(hs[i].From), hs[i-1].Holder, hs[i-1].Fence)})
			}
			if prev := hs[i-1]; prev.To.IsZero() || prev.To.After(hs[i].From) {
				out = append(out, Violation{"exclusion", fmt.Sprintf("election %q: the store held it for %s (fence %d) and %s (fence %d) at once at %s",
					name, prev.Holder, prev.Fence, hs[i].Holder, hs[i].Fence, stamp(hs[i].From))})
			}
		}
	}
	return out
}

// stoppedAt returns, per candidate ID, the real time its candidate reached
// StateStopped.
func (r *Recorder) stoppedAt() map[string]time.Time {
	out := map[string]time.Time{}
	for _, ev := range r.events {
		if ev.Candidate != "" && ev.State == election.StateStopped {
			if _, seen := out[ev.Candidate]; !seen {
				out[ev.Candidate] = ev.At
			}
		}
	}
	return out
}

func (r *Recorder) checkZombies(b Bounds) []Violation {
	var out []Violation
	stopped := r.stoppedAt()
	processOf := map[string]string{}
	for _, ev := range r.events {
		if ev.Candidate != "" {
			processOf[ev.Candidate] = ev.Process
		}
	}
	for _, h := range r.holds {
		at, ok := stopped[h.Holder]
		if !ok {
			continue
		}
		if _, dead := r.crashed[processOf[h.Holder]]; dead {
			continue
		}
		end := h.To
		if end.IsZero() {
			end = b.End
		}
		if !end.After(at) {
			continue
		}
		from := at
		if h.From.After(from) {
			from = h.From
		}
		process := processOf[h.Holder]
		slack := b.ZombieSlack
		quiet, ok := r.quietFrom(process, from, slack)
		if !ok {
			continue
		}
		// An elector that began to close while the claim could still be on
		// its way out makes one last release, not retried if it fails: the
		// claim may then expire with the session. One that began to close
		// later found a zombie already.
		if closed, wasClosed := r.closed[process]; wasClosed && end.After(closed) && !closed.After(quiet.Add(slack)) {
			slack += b.ClosedSlack
			if closed.After(from) {
				from = closed
			}
			if quiet, ok = r.quietFrom(process, from, slack); !ok {
				continue
			}
		}
		if end.Sub(quiet) > slack {
			out = append(out, Violation{"zombie", fmt.Sprintf(
				"election %q: the store held %s's claim (fence %d) until %s, %v after it stopped at %s (quiet from %s; slack %v)",
				h.Election, h.Holder, h.Fence, stampOrHeld(h.To), end.Sub(at), stamp(at), stamp(quiet), slack)})
		}
	}
	return out
}

// quietFrom returns when the world around process (its own link, and the
// store) went quiet for good after from: the end of the last fault that
// began before that moment plus slack, since any such fault may have kept
// a release from the store. ok is false if such a fault never ended.
func (r *Recorder) quietFrom(process string, from time.Time, slack time.Duration) (quiet time.Time, ok bool) {
	t := from
	for moved := true; moved; {
		moved = false
		for _, f := range r.faults {
			if f.Process != "" && f.Process != process || !f.From.Before(t.Add(slack)) {
				continue
			}
			if f.To.IsZero() {
				return time.Time{}, false
			}
			if f.To.After(t) {
				t, moved = f.To, true
			}
		}
	}
	return t, true
}

// ended returns when the term (candidate, fence) ended for its candidate
// (EventLost or EventSteppingDown), if it has.
func (r *Recorder) ended(candidate string, fence uint64) (time.Time, bool) {
	for _, ev := range r.events {
		if ev.Candidate == candidate && ev.Fence == fence &&
			(ev.Kind == election.EventLost || ev.Kind == election.EventSteppingDown) {
			return ev.At, true
		}
	}
	return time.Time{}, false
}

// Lingering reports whether a handler of a term that has ended still runs,
// or ran past since.
func (r *Recorder) Lingering(since time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, run := range r.runs {
		if !run.End.IsZero() && !run.End.After(since) {
			continue
		}
		if _, ok := r.ended(run.Candidate, run.Fence); ok {
			return true
		}
	}
	return false
}

func (r *Recorder) checkLiveness(b Bounds) []Violation {
	var out []Violation
	by := r.runsByElection()
	for _, name := range sortedKeys(b.Live) {
		live := b.Live[name]
		if len(live) == 0 {
			continue
		}
		start := r.livenessFrom(by[name], b.Healed, b.End)
		due := start.Add(b.LeadWithin)
		if due.After(b.End) {
			out = append(out, Violation{"liveness", fmt.Sprintf("election %q: the record ends at %s, before the liveness bound %s: record longer",
				name, stamp(b.End), stamp(due))})
			continue
		}
		if !r.ledAt(name, live, due, by[name]) {
			out = append(out, Violation{"liveness", fmt.Sprintf("election %q: no live candidate (%s) led at %s, %v after faults healed at %s and lingering handlers returned at %s",
				name, strings.Join(live, ", "), stamp(due), b.LeadWithin, stamp(b.Healed), stamp(start))})
		}
	}
	return out
}

// livenessFrom returns when the liveness bound starts for an election
// whose runs are runs: once faults healed and every handler lingering after
// its term ended (before asOf) has returned, since the next term cannot
// start before them.
func (r *Recorder) livenessFrom(runs []*Run, healed, asOf time.Time) time.Time {
	start := healed
	for _, run := range runs {
		endedAt, ok := r.ended(run.Candidate, run.Fence)
		if !ok || !endedAt.Before(asOf) {
			continue
		}
		end := run.End
		if end.IsZero() || end.After(asOf) {
			end = asOf
		}
		if end.After(start) {
			start = end
		}
	}
	return start
}

// LivenessDue returns how long the record must go on, from now, for the
// liveness check of Check to decide: the latest bound over the elections,
// given that faults healed at healed and some live candidate must lead
// within leadWithin. A handler that lingers on moves it later.
func (r *Recorder) LivenessDue(healed time.Time, leadWithin time.Duration) time.Duration {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	due := healed.Add(leadWithin)
	for _, runs := range r.runsByElection() {
		if d := r.livenessFrom(runs, healed, now.Add(time.Nanosecond)).Add(leadWithin); d.After(due) {
			due = d
		}
	}
	return due.Sub(now)
}

// ledAt reports whether one of the live candidates led election name at
// t: the store held it for them, or one of their handlers ran then.
func (r *Recorder) ledAt(name string, live []string, t time.Time, runs []*Run) bool {
	for _, h := range r.holds {
		if h.Election == name && contains(live, h.Holder) && !h.From.After(t) && (h.To.IsZero() || h.To.After(t)) {
			return true
		}
	}
	for _, run := range runs {
		if contains(live, run.Candidate) && !run.Crashed && !run.Start.After(t) && (run.End.IsZero() || run.End.After(t)) {
			return true
		}
	}
	return false
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "(running)"
	}
	return t.UTC().Format("15:04:05.000000")
}

func stampOrHeld(t time.Time) string {
	if t.IsZero() {
		return "the end (still held)"
	}
	return stamp(t)
}

// Dump renders the whole history, in time order, for a failure report.
func (r *Recorder) Dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	for _, run := range r.runs {
		lines = append(lines, line{run.Start, fmt.Sprintf("%s handler of %s starts (%s fence %d)", run.Process, run.Candidate, run.Election, run.Fence)})
		if !run.End.IsZero() {
			what := "returns"
			if run.Crashed {
				what = "dies with its process"
			}
			lines = append(lines, line{run.End, fmt.Sprintf("%s handler of %s %s (fence %d)", run.Process, run.Candidate, what, run.Fence)})
		}
	}
	for _, ev := range r.events {
		text := fmt.Sprintf("%s %s %v -> %v", ev.Process, ev.Candidate, ev.Kind, ev.State)
		if ev.Fence != 0 {
			text += fmt.Sprintf(" fence %d", ev.Fence)
		}
		if ev.Leader != nil {
			text += fmt.Sprintf(" leader %s/%d", ev.Leader.ID, ev.Leader.Fence)
		}
		if ev.Overrun != 0 {
			text += fmt.Sprintf(" overrun %v", ev.Overrun)
		}
		if ev.Err != nil {
			text += fmt.Sprintf(" err %v", ev.Err)
		}
		lines = append(lines, line{ev.At, text})
	}
	for _, h := range r.holds {
		lines = append(lines, line{h.From, fmt.Sprintf("store: %s holds %s (fence %d)", h.Holder, h.Election, h.Fence)})
		if !h.To.IsZero() {
			lines = append(lines, line{h.To, fmt.Sprintf("store: %s no longer holds %s (fence %d)", h.Holder, h.Election, h.Fence)})
		}
	}
	for _, f := range r.faults {
		who := f.Process
		if who == "" {
			who = "store"
		}
		lines = append(lines, line{f.From, fmt.Sprintf("fault: %s %s begins", who, f.What)})
		if !f.To.IsZero() {
			lines = append(lines, line{f.To, fmt.Sprintf("fault: %s %s ends", who, f.What)})
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%s %s\n", stamp(l.at), l.text)
	}
	return b.String()
}

// Handler returns an election.Handler that records its runs in process:
// each from its call until its context ends.
func (r *Recorder) Handler(process string) election.Handler {
	return func(ctx context.Context, t election.Term) {
		run := r.Begin(process, t)
		defer run.Return()
		<-ctx.Done()
	}
}

// Count returns the number of runs of election name recorded so far.
func (r *Recorder) Count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, run := range r.runs {
		if run.Election == name {
			n++
		}
	}
	return n
}

// Report reports every violation Check finds on tb, as errors, and returns
// the number of runs recorded.
func (r *Recorder) Report(tb testing.TB, b Bounds) int {
	tb.Helper()
	for _, v := range r.Check(b) {
		tb.Errorf("%v", v)
	}
	return len(r.Runs())
}
