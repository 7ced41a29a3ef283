package robustness

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election/internal/history"
)

// electionName is the one election every candidate campaigns for.
const electionName = "robustness"

// TestRobustness runs each backend in turn (never at once: three stores'
// faults on two cores would turn timing into noise) for
// -robustness.duration under a seeded schedule of faults, then checks the
// history and the sink. A failure prints the seed and the command that
// replays the schedule.
func TestRobustness(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	for _, backend := range strings.Split(*flagBackends, ",") {
		t.Run(backend, func(t *testing.T) { runBackend(t, backend, seed) })
	}
}

func replayCommand(backend string, seed int64) string {
	race := ""
	if raceEnabled {
		race = "-race "
	}
	return fmt.Sprintf("ELECTION_TEST_BIN=/work/main/bin go test %s-count=1 -timeout 0 -run 'TestRobustness/%s$' ./robustness -v -robustness.seed=%d -robustness.duration=%v",
		race, backend, seed, *flagDuration)
}

func runBackend(t *testing.T, backend string, seed int64) {
	t.Logf("seed %d, %v of faults; replay: %s", seed, *flagDuration, replayCommand(backend, seed))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FAILED: seed %d; replay the schedule with:\n    %s", seed, replayCommand(backend, seed))
		}
	})
	st := startStore(t, backend)
	w := newWorld(t, st, ttl)
	// One stream draws the schedule (number of candidates, each fault's
	// kind, length and the pause before it), so a seed replays it whatever
	// the timing; another picks a target when no one leads.
	schedule := rand.New(rand.NewPCG(uint64(seed), 1))
	pick := rand.New(rand.NewPCG(uint64(seed), 2))
	n := 3 + schedule.IntN(3)
	t.Logf("%s: %d candidates, TTL %v, candidate logs in %s", backend, n, ttl, w.logDir)
	w.populate(n)

	begin := time.Now()
	for time.Since(begin) < *flagDuration && !t.Failed() {
		// Between faults, half a TTL to two: time to elect and write, or
		// a fault that strikes a recovery under way.
		gap := between(0.5, 2, schedule.Float64())
		f := catalogue[schedule.IntN(len(catalogue))]
		if len(st.faults) > 0 && schedule.IntN(2) == 0 {
			// A multi-node store: half the faults are of its own kinds.
			f = st.faults[schedule.IntN(len(st.faults))]
		}
		frac := schedule.Float64()
		// One fault on a process in four strikes a waiting candidate.
		follower := schedule.IntN(4) == 0
		time.Sleep(gap)
		w.populate(n)
		w.inject(f, frac, follower, pick)
	}
	w.populate(n)
	healed := time.Now()
	// Every fault has healed: some live candidate must lead within
	// leadWithin, counted from here or from the return of a handler that
	// lingered past its term.
	leadWithin := 3*ttl + st.expiryLag + 10*time.Second
	for {
		w.mu.Lock()
		due := w.rec.LivenessDue(healed, leadWithin)
		w.mu.Unlock()
		if due <= 0 {
			break
		}
		time.Sleep(due + 10*time.Millisecond)
	}
	end := time.Now()
	var live []string
	for _, p := range w.live() {
		live = append(live, p.name)
	}
	w.shutdown()

	w.mu.Lock()
	defer w.mu.Unlock()
	violations := w.rec.Check(history.Bounds{
		ZombieSlack: ttl, ClosedSlack: ttl + st.expiryLag,
		Healed: healed, LeadWithin: leadWithin, End: end,
		Live: map[string][]string{electionName: live},
	})
	violations, paused := w.pausedOverlaps(violations)
	for _, v := range violations {
		t.Errorf("history: %v", v)
	}
	for _, v := range paused {
		if *flagStrict {
			t.Errorf("history (strict): %v", v)
		} else {
			t.Logf("history: excused (-robustness.strict=false), a SIGSTOPped leader not reported as overrun: %v", v)
		}
	}
	for _, v := range w.checkSink() {
		t.Errorf("sink: %s", v)
	}
	for _, p := range w.problems {
		t.Errorf("protocol: %s", p)
	}
	for _, tr := range w.childTrouble() {
		t.Errorf("candidate: %s", tr)
	}
	w.report(begin, end)
	if t.Failed() || *flagKeep {
		path := filepath.Join(w.logDir, "history.txt")
		if err := os.WriteFile(path, []byte(w.rec.Dump()), 0o644); err != nil {
			t.Errorf("write the history: %v", err)
		}
		// The store's own logs are in test temporary directories, gone
		// once the test ends: keep a copy with the rest.
		for name, log := range st.logs {
			if b, err := os.ReadFile(log); err == nil {
				_ = os.WriteFile(filepath.Join(w.logDir, "store-"+name+".log"), b, 0o644)
			}
		}
		t.Logf("the whole history: %s; candidate and store logs: %s", path, w.logDir)
	} else {
		os.RemoveAll(w.logDir)
	}
}

// pausedOverlaps splits from violations the overlaps of a handler whose
// process was frozen (process-pause) when the next term began and which
// returned as soon as the process thawed, with no overrun reported. The
// overlap itself is the one every README admits (a paused process: only
// the fence protects writes then), but the core should have reported it:
// when the thawed process hears that a newer term exists before its
// deadline timer runs, term.postDone computes no Overrun, because it counts
// one only once that timer has fired. w.mu is held.
func (w *world) pausedOverlaps(violations []history.Violation) (rest, paused []history.Violation) {
	runs := w.rec.Runs()
	for _, v := range violations {
		excused := false
		for _, a := range runs {
			if v.Property != "exclusion" || a.Crashed || a.End.IsZero() ||
				!strings.Contains(v.Detail, fmt.Sprintf(": %s (fence %d, ", a.Candidate, a.Fence)) {
				continue
			}
			for _, b := range runs {
				if !strings.Contains(v.Detail, fmt.Sprintf(" still ran when %s (fence %d) started at ", b.Candidate, b.Fence)) {
					continue
				}
				for _, f := range w.faults {
					// Frozen when b began, and returned within a TTL of the thaw.
					if f.Kind == "process-pause" && f.Process == a.Process &&
						!f.From.After(b.Start) && !f.To.Before(b.Start) && a.End.Before(f.To.Add(ttl)) {
						excused = true
					}
				}
			}
		}
		if excused {
			paused = append(paused, v)
		} else {
			rest = append(rest, v)
		}
	}
	return rest, paused
}

// checkSink checks the sink's record on its own, apart from the rule the
// sink applied: in arrival order, no accepted write has a fence below one
// accepted before it, and no fence was written by two candidates. w.mu is
// held.
func (w *world) checkSink() []string {
	var out []string
	highest := map[string]uint64{}
	writerOf := map[string]string{}
	for _, sw := range w.sink {
		key := fmt.Sprintf("%s/%d", sw.Election, sw.Fence)
		if other, ok := writerOf[key]; ok && other != sw.Writer {
			out = append(out, fmt.Sprintf("election %q: fence %d written by %s and by %s", sw.Election, sw.Fence, other, sw.Writer))
		}
		writerOf[key] = sw.Writer
		if !sw.Accepted {
			continue
		}
		if sw.Fence < highest[sw.Election] {
			out = append(out, fmt.Sprintf("election %q: %s's write with fence %d accepted at %s after fence %d",
				sw.Election, sw.Writer, sw.Fence, sw.At.Format("15:04:05.000000"), highest[sw.Election]))
		}
		if sw.Fence > highest[sw.Election] {
			highest[sw.Election] = sw.Fence
		}
	}
	return out
}

// faultOf returns the kind of the last fault that began at or before at,
// or "none". w.faults is in order of their start.
func (w *world) faultOf(at time.Time) string {
	i := sort.Search(len(w.faults), func(i int) bool { return w.faults[i].From.After(at) })
	if i == 0 {
		return "none"
	}
	return w.faults[i-1].label()
}

// report logs the figures of the run: terms, writes, and per fault kind
// how leadership recovered. w.mu is held.
func (w *world) report(begin, end time.Time) {
	runs := w.rec.Runs()
	sort.Slice(runs, func(i, j int) bool { return runs[i].Start.Before(runs[j].Start) })
	terms := map[uint64]bool{}
	for _, r := range runs {
		terms[r.Fence] = true
	}
	// newest[i] is the greatest fence of runs[:i+1], to find in log time
	// whether a newer term had begun before a write arrived.
	newest := make([]uint64, len(runs))
	for i, r := range runs {
		newest[i] = r.Fence
		if i > 0 && newest[i-1] > r.Fence {
			newest[i] = newest[i-1]
		}
	}
	var accepted, refused, lingering int
	staleBy := map[string]int{}
	lateBy := map[string]int{}
	for _, sw := range w.sink {
		if !sw.Accepted {
			refused++
			staleBy[w.faultOf(sw.At)]++
			continue
		}
		accepted++
		if sw.Lingering {
			lingering++
		}
		// Accepted, although a handler of a newer term had started: a
		// deposed leader (paused, say) wrote before the new one did.
		if i := sort.Search(len(runs), func(i int) bool { return !runs[i].Start.Before(sw.At) }); i > 0 && newest[i-1] > sw.Fence {
			lateBy[w.faultOf(sw.At)]++
		}
	}
	w.t.Logf("%v run, %d faults, %d processes, %d terms; sink: %d writes accepted (%d by lingering handlers), %d refused as stale",
		end.Sub(begin).Round(time.Second), len(w.faults), len(w.procs), len(terms), accepted, lingering, refused)

	type stats struct {
		n, kept, open int
		takeover      []time.Duration // fault start → a new term's first handler
		gap           []time.Duration // no handler running, until the new one
	}
	by := map[string]*stats{}
	for i, f := range w.faults {
		s := by[f.label()]
		if s == nil {
			s = &stats{}
			by[f.label()] = s
		}
		s.n++
		next := end
		if i+1 < len(w.faults) {
			next = w.faults[i+1].From
		}
		var newer *history.Run
		for j := range runs {
			if r := &runs[j]; r.Fence > f.Fence && r.Start.After(f.From) && r.Start.Before(next) {
				newer = r
				break
			}
		}
		if newer == nil {
			kept := false
			for _, r := range runs {
				if f.Fence != 0 && r.Fence == f.Fence && !r.Crashed && (r.End.IsZero() || !r.End.Before(next)) {
					kept = true
				}
			}
			if kept {
				s.kept++
			} else {
				s.open++
			}
			continue
		}
		s.takeover = append(s.takeover, newer.Start.Sub(f.From))
		lastEnd := f.From
		for _, r := range runs {
			if r.Fence == f.Fence && r.End.After(lastEnd) {
				lastEnd = r.End
			}
		}
		if f.Fence == 0 || newer.Start.Before(lastEnd) {
			lastEnd = f.From
		}
		s.gap = append(s.gap, newer.Start.Sub(lastEnd))
	}
	kinds := make([]string, 0, len(by))
	for k := range by {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "%-27s %3s %5s %6s  %-26s %-26s %6s %6s\n", "fault", "n", "kept", "open", "takeover med/max", "leaderless med/max", "stale", "late")
	for _, k := range kinds {
		s := by[k]
		fmt.Fprintf(&b, "%-27s %3d %5d %6d  %-26s %-26s %6d %6d\n", k, s.n, s.kept, s.open,
			medMax(s.takeover), medMax(s.gap), staleBy[k], lateBy[k])
	}
	if len(w.endErrors) > 0 {
		w.t.Logf("Stop or Close returned ErrUnavailable %d times:\n    %s", len(w.endErrors), strings.Join(w.endErrors, "\n    "))
	}
	w.t.Logf("recovery per fault kind (kept: the term in force survived until the next fault; open: no new term before the next fault, nor the old one kept; takeover: from the fault's start to the next term's first handler; leaderless: from the old term's last handler to it; stale: writes refused; late: old-fence writes accepted after a newer term began):\n%s", b.String())
}

// medMax renders the (lower) median and the maximum of ds.
func medMax(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("%v / %v", s[(len(s)-1)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}
