package history_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/history"
)

// The checker is what the simulation, the conformance suite and the
// robustness tests trust to fail: each case below is a pair of hand-made
// histories, one that breaks a promise and a nearly identical one that
// keeps it, so that a check that reports too much fails as surely as one
// that reports too little.

// t0 is the start of every scene; times in a scene are offsets from it.
var t0 = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

const job = "job"

// scene is a history written by hand on a clock moved by hand.
type scene struct {
	now   time.Time
	rec   *history.Recorder
	holds []history.Hold
	b     history.Bounds
}

func newScene() *scene {
	s := &scene{now: t0}
	s.rec = history.New(func() time.Time { return s.now })
	s.b = history.Bounds{ZombieSlack: 2 * time.Second, ClosedSlack: 5 * time.Second, End: t0.Add(100 * time.Second)}
	return s
}

// at moves the clock to t0+d.
func (s *scene) at(d time.Duration) *scene {
	s.now = t0.Add(d)
	return s
}

// begin starts a handler's run of the term (candidate, fence) of job in
// process, now.
func (s *scene) begin(process, candidate string, fence uint64) *history.Run {
	return s.rec.Begin(process, election.Term{Election: job, ID: candidate, Fence: fence})
}

// event delivers ev, of job and stamped now unless it says otherwise, to
// process's OnEvent.
func (s *scene) event(process string, ev election.Event) {
	if ev.Election == "" {
		ev.Election = job
	}
	if ev.Time.IsZero() {
		ev.Time = s.now
	}
	s.rec.OnEvent(process)(ev)
}

// overrun reports, now, that the handlers of the term (candidate, fence)
// run past its deadline, which was at t0+deadline on process's clock.
func (s *scene) overrun(process, candidate string, fence uint64, deadline time.Duration) {
	s.event(process, election.Event{Kind: election.EventHandlerOverrun, Candidate: candidate, Fence: fence,
		State: election.StateSteppingDown, Overrun: s.now.Sub(t0.Add(deadline))})
}

// stopped reports, now, that candidate of process has stopped.
func (s *scene) stopped(process, candidate string) {
	s.event(process, election.Event{Kind: election.EventReleased, Candidate: candidate, State: election.StateStopped})
}

// lost reports, now, that the term (candidate, fence) was lost.
func (s *scene) lost(process, candidate string, fence uint64) {
	s.event(process, election.Event{Kind: election.EventLost, Candidate: candidate, Fence: fence,
		State: election.StateSteppingDown, Reason: election.LossDeadline})
}

// hold records that the store held job for holder under fence from t0+from
// to t0+to (to 0: still held).
func (s *scene) hold(holder string, fence uint64, from, to time.Duration) {
	h := history.Hold{Election: job, Holder: holder, Fence: fence, From: t0.Add(from)}
	if to != 0 {
		h.To = t0.Add(to)
	}
	s.holds = append(s.holds, h)
}

func (s *scene) check() []history.Violation {
	s.rec.SetHolds(s.holds)
	return s.rec.Check(s.b)
}

// pair is a history that breaks a promise when bad is set and keeps it
// otherwise; want is the one violation the bad one must produce:
// "property: part of its detail".
type pair struct {
	name  string
	build func(s *scene, bad bool)
	want  string
}

func runPairs(t *testing.T, pairs []pair) {
	t.Helper()
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			for _, bad := range []bool{true, false} {
				s := newScene()
				p.build(s, bad)
				if got := s.check(); bad {
					expect(t, "the bad history", got, p.want)
				} else {
					expect(t, "its twin", got)
				}
			}
		})
	}
}

// expect checks that got is exactly the violations want, in order, each
// "property: part of its detail".
func expect(t *testing.T, what string, got []history.Violation, want ...string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		property, detail, _ := strings.Cut(want[i], ": ")
		ok = got[i].Property == property && strings.Contains(got[i].Detail, detail)
	}
	if !ok {
		t.Errorf("%s: got %d violations, want %d %q:\n%s", what, len(got), len(want), want, list(got))
	}
}

func list(vs []history.Violation) string {
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "  %v\n", v)
	}
	return b.String()
}

const sec = time.Second

func TestExclusion(t *testing.T) {
	// c1's handler runs from 0s to 10s, c2's starts at 5s.
	overlap := func(s *scene) (a *history.Run) {
		a = s.at(0).begin("p1", "c1", 1)
		s.at(5*sec).begin("p2", "c2", 2).Return()
		return a
	}
	runPairs(t, []pair{{
		name: "overlap without an overrun, or with one whose deadline came before the later start",
		build: func(s *scene, bad bool) {
			a := overlap(s)
			if !bad {
				s.at(5*sec).overrun("p1", "c1", 1, 4*sec)
			}
			s.at(10 * sec)
			a.Return()
		},
		want: "exclusion: no overrun reported",
	}, {
		name: "an overrun whose deadline is after the later start, or at it",
		build: func(s *scene, bad bool) {
			a := overlap(s)
			deadline := 5 * sec
			if bad {
				deadline += time.Millisecond
			}
			s.at(6*sec).overrun("p1", "c1", 1, deadline)
			s.at(10 * sec)
			a.Return()
		},
		want: "exclusion: overrun reported, but its deadline 03:00:05.001000 was after the later start",
	}, {
		name: "a late EventHandlersReturned reports an overrun; an early one does not",
		build: func(s *scene, bad bool) {
			a := overlap(s)
			s.at(10 * sec)
			a.Return()
			ev := election.Event{Kind: election.EventHandlersReturned, Candidate: "c1", Fence: 1, State: election.StateReleasing}
			if !bad {
				ev.Overrun = 6 * sec // its deadline was at 4s
			}
			s.event("p1", ev)
		},
		want: "exclusion: no overrun reported",
	}, {
		name: "an overrun of another term does not excuse the overlap",
		build: func(s *scene, bad bool) {
			a := overlap(s)
			if bad {
				s.at(5*sec).overrun("p1", "c1", 7, 4*sec)
			} else {
				s.at(5*sec).overrun("p1", "c1", 1, 4*sec)
			}
			s.at(10 * sec)
			a.Return()
		},
		want: "exclusion: no overrun reported",
	}, {
		name: "a run still running when the later one starts, or returned just then",
		build: func(s *scene, bad bool) {
			a := overlap(s)
			if !bad {
				s.at(5 * sec)
				a.Return()
			}
		},
		want: "exclusion: c1 (fence 1, 03:00:00.000000..(running)) still ran when c2 (fence 2) started at 03:00:05.000000",
	}, {
		name: "a crashed process's run ends at the crash",
		build: func(s *scene, bad bool) {
			a := s.at(0).begin("p1", "c1", 1)
			if !bad {
				s.at(4 * sec).rec.Crash("p1")
			}
			s.at(5*sec).begin("p2", "c2", 2).Return()
			s.at(10 * sec)
			a.Return() // its goroutine went on; its process did not
		},
		want: "exclusion: no overrun reported",
	}, {
		name: "two handlers of one term never conflict; two terms of one candidate do",
		build: func(s *scene, bad bool) {
			a := s.at(0).begin("p1", "c1", 1)
			fence := uint64(1)
			if bad {
				fence = 2
			}
			s.at(5*sec).begin("p1", "c1", fence).Return()
			s.at(10 * sec)
			a.Return()
		},
		want: "exclusion: c1 (fence 1, 03:00:00.000000..03:00:10.000000) still ran when c1 (fence 2)",
	}, {
		name: "the reported deadline is mapped to real time with the process's ToReal",
		build: func(s *scene, bad bool) {
			// p1's clock is 2s behind: its deadline at 4s is 6s in real
			// time, after c2 started.
			behind := func(t time.Time) time.Time { return t.Add(2 * sec) }
			if !bad {
				behind = nil
			}
			s.rec.AddProcess(history.Process{Name: "p1", ToReal: behind})
			a := overlap(s)
			s.at(8*sec).overrun("p1", "c1", 1, 4*sec)
			s.at(10 * sec)
			a.Return()
		},
		want: "exclusion: overrun reported, but its deadline 03:00:06.000000 was after the later start",
	}})
}

func TestCrashedRuns(t *testing.T) {
	s := newScene()
	a := s.at(1*sec).begin("p1", "c1", 1)
	s.at(3 * sec).rec.Crash("p1")
	s.at(4 * sec)
	a.Return() // its goroutine goes on in a test; the process is dead
	late := s.at(5*sec).begin("p1", "c1", 1)
	if a.Running() || late.Running() {
		t.Error("a run of a crashed process still running")
	}
	if !s.rec.Crashed("p1") || s.rec.Crashed("p2") {
		t.Errorf("Crashed: p1 %v, p2 %v; want true, false", s.rec.Crashed("p1"), s.rec.Crashed("p2"))
	}
	crash := t0.Add(3 * sec)
	runs := s.rec.Runs()
	want := []history.Run{
		{Process: "p1", Election: job, Candidate: "c1", Fence: 1, Start: t0.Add(sec), End: crash, Crashed: true},
		{Process: "p1", Election: job, Candidate: "c1", Fence: 1, Start: crash, End: crash, Crashed: true},
	}
	if len(runs) != len(want) || runs[0] != want[0] || runs[1] != want[1] {
		t.Errorf("runs:\n got %+v\nwant %+v", runs, want)
	}
}

func TestFences(t *testing.T) {
	runPairs(t, []pair{{
		name: "runs whose fences do not increase",
		build: func(s *scene, bad bool) {
			a := s.at(0).begin("p1", "c1", 2)
			s.at(5 * sec)
			a.Return()
			fence := uint64(3)
			if bad {
				fence = 1
			}
			s.begin("p2", "c2", fence).Return()
		},
		want: "fence: c2 started at 03:00:05.000000 with fence 1 after c1's fence 2",
	}, {
		name: "runs of one fence by two candidates, or by one",
		build: func(s *scene, bad bool) {
			a := s.at(0).begin("p1", "c1", 2)
			s.at(5 * sec)
			a.Return()
			who := "c1"
			if bad {
				who = "c2"
			}
			s.begin("p2", who, 2).Return()
		},
		want: "fence: c2 started at 03:00:05.000000 with fence 2 after c1's fence 2",
	}, {
		name: "store holds whose fences do not increase",
		build: func(s *scene, bad bool) {
			s.hold("c1", 2, 0, 5*sec)
			fence := uint64(3)
			if bad {
				fence = 2
			}
			s.hold("c2", fence, 5*sec, 10*sec)
		},
		want: "fence: the store gave c2 fence 2 at 03:00:05.000000 after c1's fence 2",
	}, {
		name: "the store holding two claims at once",
		build: func(s *scene, bad bool) {
			to := 5 * sec
			if bad {
				to += time.Millisecond
			}
			s.hold("c1", 1, 0, to)
			s.hold("c2", 2, 5*sec, 10*sec)
		},
		want: "exclusion: the store held it for c1 (fence 1) and c2 (fence 2) at once at 03:00:05.000000",
	}, {
		name: "the store still holding a claim when it gives another",
		build: func(s *scene, bad bool) {
			to := 5 * sec
			if bad {
				to = 0
			}
			s.hold("c1", 1, 0, to)
			s.hold("c2", 2, 5*sec, 0)
		},
		want: "exclusion: the store held it for c1 (fence 1) and c2 (fence 2) at once",
	}, {
		name: "holds at once of one election, or of two",
		build: func(s *scene, bad bool) {
			s.hold("c1", 1, 0, 0)
			other := history.Hold{Election: "other", Holder: "c2", Fence: 2, From: t0.Add(sec)}
			if bad {
				other.Election = job
			}
			s.holds = append(s.holds, other)
		},
		want: "exclusion: the store held it for c1 (fence 1) and c2 (fence 2) at once at 03:00:01.000000",
	}})

	t.Run("every run below the highest fence so far", func(t *testing.T) {
		for _, tc := range []struct {
			fences []uint64
			want   []string
		}{
			{[]uint64{5, 3, 4}, []string{"fence: fence 3 after c0's fence 5", "fence: fence 4 after c0's fence 5"}},
			{[]uint64{3, 4, 5}, nil},
		} {
			s := newScene()
			for i, f := range tc.fences {
				s.at(time.Duration(i)*sec).begin("p", fmt.Sprintf("c%d", i), f).Return()
			}
			expect(t, fmt.Sprint(tc.fences), s.check(), tc.want...)
		}
	})
}

func TestZombies(t *testing.T) {
	// c1 of p1 holds the claim from 0s; it stops at 10s; the slack is 2s
	// (5s more once its elector is closing).
	stoppedAt10 := func(s *scene, heldUntil time.Duration) {
		s.hold("c1", 1, 0, heldUntil)
		s.at(10*sec).stopped("p1", "c1")
	}
	runPairs(t, []pair{{
		name: "a stopped candidate's hold that outlives the slack, or ends at it",
		build: func(s *scene, bad bool) {
			until := 12 * sec
			if bad {
				until += time.Millisecond
			}
			stoppedAt10(s, until)
		},
		want: "zombie: the store held c1's claim (fence 1) until 03:00:12.001000, 2.001s after it stopped at 03:00:10.000000",
	}, {
		name: "a hold still there at the end of the record",
		build: func(s *scene, bad bool) {
			stoppedAt10(s, 0)
			s.b.End = t0.Add(12 * sec)
			if bad {
				s.b.End = t0.Add(13 * sec)
			}
		},
		want: "zombie: the store held c1's claim (fence 1) until the end (still held), 3s after",
	}, {
		name: "a hold that begins after the stop counts from its start",
		build: func(s *scene, bad bool) {
			s.at(10*sec).stopped("p1", "c1")
			until := 17 * sec
			if bad {
				until += time.Millisecond
			}
			s.hold("c1", 1, 15*sec, until)
		},
		want: "zombie: the store held c1's claim (fence 1) until 03:00:17.001000",
	}, {
		name: "a fault that began within the slack window, or after it",
		build: func(s *scene, bad bool) {
			stoppedAt10(s, 20*sec)
			from := 11 * sec
			if bad {
				from = 12 * sec // stop + slack: too late to have kept the release away
			}
			heal := s.at(from).rec.Fault("p1", "cut")
			s.at(19 * sec)
			heal()
		},
		want: "zombie: the store held c1's claim (fence 1) until 03:00:20.000000, 10s after it stopped at 03:00:10.000000 (quiet from 03:00:10.000000",
	}, {
		name: "a fault of another process, or of the store",
		build: func(s *scene, bad bool) {
			stoppedAt10(s, 20*sec)
			process := ""
			if bad {
				process = "p2"
			}
			heal := s.at(11*sec).rec.Fault(process, "pause")
			s.at(19 * sec)
			heal()
		},
		want: "zombie: the store held c1's claim",
	}, {
		name: "a fault that began within the slack after the one before ended",
		build: func(s *scene, bad bool) {
			stoppedAt10(s, 20*sec)
			heal := s.at(11*sec).rec.Fault("p1", "cut")
			s.at(15 * sec)
			heal()
			second := 16 * sec
			if bad {
				second = 17 * sec
			}
			heal = s.at(second).rec.Fault("", "restart")
			s.at(19 * sec)
			heal()
		},
		want: "zombie: the store held c1's claim (fence 1) until 03:00:20.000000, 10s after it stopped at 03:00:10.000000 (quiet from 03:00:15.000000",
	}, {
		name: "a fault not yet healed, begun within the window or after it",
		build: func(s *scene, bad bool) {
			stoppedAt10(s, 20*sec)
			from := 11 * sec
			if bad {
				from = 12 * sec
			}
			s.at(from).rec.Fault("p1", "cut")
		},
		want: "zombie: the store held c1's claim",
	}, {
		name: "ClosedSlack once the elector began to close",
		build: func(s *scene, bad bool) {
			stoppedAt10(s, 16*sec)
			if !bad {
				s.at(9 * sec).rec.Closing("p1")
			}
		},
		want: "zombie: the store held c1's claim (fence 1) until 03:00:16.000000, 6s after it stopped",
	}, {
		name: "ClosedSlack counts from the Closing",
		build: func(s *scene, bad bool) {
			stoppedAt10(s, 19*sec)
			s.at(12 * sec).rec.Closing("p1")
			s.at(13 * sec).rec.Closing("p1") // only the first counts
			if bad {
				s.holds[0].To = t0.Add(19*sec + time.Millisecond)
			}
		},
		want: "zombie: the store held c1's claim (fence 1) until 03:00:19.001000, 9.001s after it stopped at 03:00:10.000000 (quiet from 03:00:12.000000; slack 7s)",
	}, {
		name: "no ClosedSlack for a Closing after the hold ended",
		build: func(s *scene, bad bool) {
			stoppedAt10(s, 16*sec)
			at := 11500 * time.Millisecond
			if bad {
				at = 16 * sec
			}
			s.at(at).rec.Closing("p1")
		},
		want: "zombie: the store held c1's claim (fence 1) until 03:00:16.000000, 6s after it stopped at 03:00:10.000000 (quiet from 03:00:10.000000; slack 2s)",
	}, {
		name: "no ClosedSlack for a Closing after the claim had outlived its slack",
		build: func(s *scene, bad bool) {
			stoppedAt10(s, 16*sec)
			at := 12 * sec
			if bad {
				at += time.Millisecond
			}
			s.at(at).rec.Closing("p1")
		},
		want: "zombie: the store held c1's claim (fence 1) until 03:00:16.000000, 6s after it stopped at 03:00:10.000000 (quiet from 03:00:10.000000; slack 2s)",
	}, {
		name: "the slack before a Closing counts from the end of the faults",
		build: func(s *scene, bad bool) {
			stoppedAt10(s, 27*sec)
			heal := s.at(11*sec).rec.Fault("p1", "cut")
			s.at(20 * sec)
			heal()
			at := 21 * sec
			if bad {
				at = 22*sec + time.Millisecond
			}
			s.at(at).rec.Closing("p1")
		},
		want: "zombie: the store held c1's claim (fence 1) until 03:00:27.000000, 17s after it stopped at 03:00:10.000000 (quiet from 03:00:20.000000; slack 2s)",
	}, {
		name: "a crashed process's claims expire on their own",
		build: func(s *scene, bad bool) {
			stoppedAt10(s, 30*sec)
			if !bad {
				s.at(11 * sec).rec.Crash("p1")
			}
		},
		want: "zombie: the store held c1's claim",
	}, {
		name: "only a stop makes a zombie",
		build: func(s *scene, bad bool) {
			s.hold("c1", 1, 0, 30*sec)
			state := election.StateStopped
			if !bad {
				state = election.StateResigned
			}
			s.at(10*sec).event("p1", election.Event{Kind: election.EventReleased, Candidate: "c1", State: state})
		},
		want: "zombie: the store held c1's claim",
	}})
}

func TestLiveness(t *testing.T) {
	// Faults healed at 50s; c2 is live and must lead by 55s; the record
	// ends at 60s.
	healed := func(s *scene) {
		s.b.Healed = t0.Add(50 * sec)
		s.b.LeadWithin = 5 * sec
		s.b.End = t0.Add(60 * sec)
		s.b.Live = map[string][]string{job: {"c2"}}
	}
	runPairs(t, []pair{{
		name: "no live candidate leads by the bound, or one holds at it",
		build: func(s *scene, bad bool) {
			healed(s)
			if !bad {
				s.hold("c2", 1, 54*sec, 0)
			}
		},
		want: "liveness: election \"job\": no live candidate (c2) led at 03:00:55.000000, 5s after faults healed at 03:00:50.000000 and lingering handlers returned at 03:00:50.000000",
	}, {
		name: "a hold by a candidate that is not live",
		build: func(s *scene, bad bool) {
			healed(s)
			who := "c2"
			if bad {
				who = "c1"
			}
			s.hold(who, 1, 54*sec, 0)
		},
		want: "liveness: election \"job\": no live candidate (c2) led at 03:00:55.000000",
	}, {
		name: "a hold that begins at the bound, or just after it",
		build: func(s *scene, bad bool) {
			healed(s)
			from := 55 * sec
			if bad {
				from += time.Millisecond
			}
			s.hold("c2", 1, from, 0)
		},
		want: "liveness: election \"job\": no live candidate (c2) led at 03:00:55.000000",
	}, {
		name: "a hold that ends at the bound, or just after it",
		build: func(s *scene, bad bool) {
			healed(s)
			to := 55*sec + time.Millisecond
			if bad {
				to = 55 * sec
			}
			s.hold("c2", 1, 54*sec, to)
		},
		want: "liveness: election \"job\": no live candidate (c2) led at 03:00:55.000000",
	}, {
		name: "a live candidate's handler running at the bound, unless its process crashed",
		build: func(s *scene, bad bool) {
			healed(s)
			run := s.at(54*sec).begin("p2", "c2", 1)
			s.at(56 * sec)
			if bad {
				s.rec.Crash("p2")
			} else {
				run.Return()
			}
		},
		want: "liveness: election \"job\": no live candidate (c2) led at 03:00:55.000000",
	}, {
		name: "a handler lingering after its term ended moves the bound; one whose term goes on does not",
		build: func(s *scene, bad bool) {
			healed(s)
			run := s.at(40*sec).begin("p1", "c1", 1)
			if !bad {
				s.at(45*sec).lost("p1", "c1", 1)
			}
			s.at(53 * sec)
			run.Return()
			s.hold("c2", 2, 57*sec, 0)
		},
		want: "liveness: election \"job\": no live candidate (c2) led at 03:00:55.000000",
	}, {
		name: "a step-down's handler lingering moves the bound too",
		build: func(s *scene, bad bool) {
			healed(s)
			run := s.at(40*sec).begin("p1", "c1", 1)
			kind := election.EventSteppingDown
			if bad {
				kind = election.EventUncertain
			}
			s.at(45*sec).event("p1", election.Event{Kind: kind, Candidate: "c1", Fence: 1})
			s.at(53 * sec)
			run.Return()
			s.hold("c2", 2, 57*sec, 0)
		},
		want: "liveness: election \"job\": no live candidate (c2) led at 03:00:55.000000",
	}, {
		name: "a handler still lingering when the record ends",
		build: func(s *scene, bad bool) {
			healed(s)
			run := s.at(40*sec).begin("p1", "c1", 1)
			s.at(45*sec).lost("p1", "c1", 1)
			if !bad {
				s.at(53 * sec)
				run.Return()
			}
			s.hold("c2", 2, 57*sec, 0)
		},
		want: "liveness: election \"job\": the record ends at 03:01:00.000000, before the liveness bound 03:01:05.000000: record longer",
	}, {
		name: "a record that ends before the bound, or at it",
		build: func(s *scene, bad bool) {
			healed(s)
			s.hold("c2", 1, 54*sec, 0)
			s.b.End = t0.Add(55 * sec)
			if bad {
				s.b.End = t0.Add(55*sec - time.Millisecond)
			}
		},
		want: "liveness: election \"job\": the record ends at 03:00:54.999000, before the liveness bound 03:00:55.000000: record longer",
	}, {
		name: "an election with no live candidate is not checked",
		build: func(s *scene, bad bool) {
			healed(s)
			if !bad {
				s.b.Live = map[string][]string{job: nil}
			}
		},
		want: "liveness: election \"job\": no live candidate (c2)",
	}, {
		name: "no liveness check without Healed",
		build: func(s *scene, bad bool) {
			healed(s)
			if !bad {
				s.b.Healed = time.Time{}
			}
		},
		want: "liveness: election \"job\": no live candidate (c2)",
	}})
}

func TestWrites(t *testing.T) {
	s := newScene()
	second := s.at(sec).begin("p2", "c2", 2)
	first := s.begin("p1", "c1", 1)
	other := s.rec.Begin("p3", election.Term{Election: "other", ID: "c3", Fence: 1})
	steps := []struct {
		run  *history.Run
		want bool
	}{
		{first, true},  // nothing accepted yet
		{second, true}, // higher
		{second, true}, // equal to the highest
		{first, false}, // lower than the highest: refused
		{other, true},  // another election's sink
		{first, false}, // still refused: a refused write does not lower the bar
		{second, true},
	}
	for i, st := range steps {
		s.at(time.Duration(2+i) * sec)
		if got := s.rec.Write(st.run); got != st.want {
			t.Errorf("write %d (%s fence %d): accepted %v, want %v", i, st.run.Candidate, st.run.Fence, got, st.want)
		}
	}
	s.rec.Crash("p2")
	if s.rec.Write(second) {
		t.Error("a crashed process's write was accepted")
	}
	writes := s.rec.Writes()
	if len(writes) != len(steps) {
		t.Fatalf("%d writes recorded, want %d (a crashed process's write is dropped)", len(writes), len(steps))
	}
	for i, w := range writes {
		st := steps[i]
		want := history.Write{Election: st.run.Election, Writer: st.run.Candidate, Fence: st.run.Fence,
			At: t0.Add(time.Duration(2+i) * sec), Accepted: st.want}
		if w != want {
			t.Errorf("write %d: %+v, want %+v", i, w, want)
		}
	}
}

func TestLingering(t *testing.T) {
	s := newScene()
	since := t0.Add(10 * sec)
	if s.rec.Lingering(since) {
		t.Error("lingering with no run")
	}
	run := s.at(0).begin("p1", "c1", 1)
	if s.rec.Lingering(since) {
		t.Error("lingering: a handler whose term goes on")
	}
	s.at(5*sec).lost("p1", "c1", 1)
	if !s.rec.Lingering(since) {
		t.Error("not lingering: a handler still running after its term ended")
	}
	s.at(12 * sec)
	run.Return()
	if !s.rec.Lingering(since) {
		t.Error("not lingering: a handler that ran past since after its term ended")
	}
	if s.rec.Lingering(t0.Add(12 * sec)) {
		t.Error("lingering: a handler that returned at since")
	}
}

func TestLivenessDue(t *testing.T) {
	healed := t0.Add(50 * sec)
	lead := 5 * sec
	if got, want := newScene().at(52*sec).rec.LivenessDue(healed, lead), 3*sec; got != want {
		t.Errorf("no runs, 2s after the heal: %v, want %v", got, want)
	}
	s := newScene()
	run := s.at(40*sec).begin("p1", "c1", 1)
	if got, want := s.at(50*sec).rec.LivenessDue(healed, lead), 5*sec; got != want {
		t.Errorf("a handler whose term goes on, at the heal: %v, want %v", got, want)
	}
	// A handler lingering after its term ended: the bound is at least
	// leadWithin after now.
	s.at(53*sec).lost("p1", "c1", 1)
	if got, want := s.at(54*sec).rec.LivenessDue(healed, lead), lead+time.Nanosecond; got != want {
		t.Errorf("a handler lingering now: %v, want %v", got, want)
	}
	s.at(56 * sec)
	run.Return()
	if got, want := s.at(57*sec).rec.LivenessDue(healed, lead), 4*sec; got != want {
		t.Errorf("a handler that lingered until 56s, at 57s: %v, want %v", got, want)
	}
	if got, want := s.at(62*sec).rec.LivenessDue(healed, lead), -time.Second; got != want {
		t.Errorf("past the bound: %v, want %v", got, want)
	}
}

// errorRecorder is a testing.TB that records its errors.
type errorRecorder struct {
	testing.TB
	errors []string
}

func (e *errorRecorder) Helper() {}
func (e *errorRecorder) Errorf(format string, args ...any) {
	e.errors = append(e.errors, fmt.Sprintf(format, args...))
}

func TestReport(t *testing.T) {
	s := newScene()
	a := s.at(0).begin("p1", "c1", 2)
	s.at(5*sec).begin("p2", "c2", 1).Return()
	s.at(10 * sec)
	a.Return()
	s.hold("c1", 2, 0, 0)
	s.rec.SetHolds(s.holds)
	want := s.rec.Check(s.b)
	expect(t, "Check", want, "exclusion: no overrun reported", "fence: c2 started at 03:00:05.000000 with fence 1")
	tb := &errorRecorder{TB: t}
	if n := s.rec.Report(tb, s.b); n != 2 {
		t.Errorf("Report returned %d, want the 2 runs", n)
	}
	if len(tb.errors) != len(want) {
		t.Fatalf("Report reported %q, want %v", tb.errors, want)
	}
	for i, v := range want {
		if tb.errors[i] != v.String() || !strings.HasPrefix(v.String(), v.Property+": ") {
			t.Errorf("error %d: %q, want %q", i, tb.errors[i], v.String())
		}
	}

	clean := newScene()
	clean.at(0).begin("p1", "c1", 1).Return()
	tb = &errorRecorder{TB: t}
	if n := clean.rec.Report(tb, clean.b); n != 1 || len(tb.errors) != 0 {
		t.Errorf("a clean history: Report returned %d and reported %q, want 1 and nothing", n, tb.errors)
	}
}

func TestHandlerAndCount(t *testing.T) {
	s := newScene()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h := s.at(sec).rec.Handler("p1")
	h(ctx, election.Term{Election: job, ID: "c1", Fence: 1})
	h(ctx, election.Term{Election: job, ID: "c1", Fence: 2})
	s.rec.Handler("p1")(ctx, election.Term{Election: "other", ID: "c1", Fence: 1})
	if got := s.rec.Count(job); got != 2 {
		t.Errorf("Count(%q) = %d, want 2", job, got)
	}
	for _, run := range s.rec.Runs() {
		if run.Start != t0.Add(sec) || run.End != t0.Add(sec) {
			t.Errorf("run %+v: want it to start and end at 1s", run)
		}
	}
}

func TestDump(t *testing.T) {
	s := newScene()
	s.rec.AddProcess(history.Process{Name: "p1"})
	run := s.at(sec).begin("p1", "c1", 1)
	heal := s.at(2*sec).rec.Fault("", "pause")
	s.at(3*sec).lost("p1", "c1", 1)
	s.at(4 * sec)
	heal()
	run.Return()
	s.hold("c1", 1, 0, 5*sec)
	s.rec.SetHolds(s.holds)
	want := []string{
		"03:00:00.000000 store: c1 holds job (fence 1)",
		"03:00:01.000000 p1 handler of c1 starts (job fence 1)",
		"03:00:02.000000 fault: store pause begins",
		"03:00:03.000000 p1 c1 lost -> stepping-down fence 1",
		"03:00:04.000000 p1 handler of c1 returns (fence 1)",
		"03:00:04.000000 fault: store pause ends",
		"03:00:05.000000 store: c1 no longer holds job (fence 1)",
	}
	if got := strings.Split(strings.TrimSuffix(s.rec.Dump(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Dump:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
