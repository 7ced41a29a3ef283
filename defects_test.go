package election_test

// Regression tests for the defects of issue 11, filed against f0001dd. Each
// test is named after its defect and fails on f0001dd for that defect's
// reason. They use only API that f0001dd has too, and observe the store
// itself (a fresh client's Leader, the sessions a wrapped backend opened) or
// a second elector's candidate where the new core has richer API (Done,
// ErrHandlersRunning). Timing runs in testing/synctest bubbles: fake time
// moves only when every goroutine is blocked, so a schedule is exact and
// each check is a state, not a race against a real clock.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
)

// defectTTL is the TTL of the tests' electors.
const defectTTL = 10 * time.Second

// TestDefect1CloseKeepsSessionWhileHandlersRun: defect 1, Elector.Close
// revoked the session while a handler of a held claim still ran, so the
// store elected another candidate under that handler. Elector A's leader
// has a handler that ignores cancellation; A is closed with a context that
// ends first. The store must keep A's claim, renewed, for as long as the
// handler runs (checked over 3 TTLs, in the store itself), and the
// candidate of elector B that waits in line must take over only once the
// handler has returned.
func TestDefect1CloseKeepsSessionWhileHandlersRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.NewStore()
		cfg := election.Config{TTL: defectTTL}
		elA := mustElector(t, store.NewClient(), cfg)
		elB := mustElector(t, store.NewClient(), cfg)
		defer closeQuietly(elA, elB)
		unblock, free := gate()
		defer free()
		a := mustCandidate(t, elA, election.CandidateConfig{Name: "job", ID: "a", Handlers: []election.Handler{
			func(ctx context.Context, _ election.Term) { <-ctx.Done(); <-unblock },
		}})
		b := mustCandidate(t, elB, election.CandidateConfig{Name: "job", ID: "b"})
		startAll(t, a, b)
		if !a.IsLeader() {
			t.Fatal("a not elected on the first attempt against an empty store")
		}

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := elA.Close(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close with a's handler still running = %v; want an error wrapping context.DeadlineExceeded", err)
		}
		for waited := time.Duration(0); waited <= 3*defectTTL; waited += defectTTL {
			if got := storeLeader(t, store.NewClient(), "job"); got != "a" || b.IsLeader() {
				t.Fatalf("%v after Close returned, with a's handler still running, the store's leader is %s (b leads: %v); "+
					"want a's claim held, its session renewed, until the handler returns", waited, got, b.IsLeader())
			}
			time.Sleep(defectTTL)
		}
		free()
		eventually(t, 3*defectTTL, b.IsLeader, "b elected after a's handler returned")
	})
}

// TestDefect2StopRacingLossLeavesNoZombie: defect 2, Stop racing a loss
// the candidate had not yet processed left a zombie: the term stayed in the
// session, which renewed its claim for ever, so the election had no leader
// until the process exited. The race is made deterministic: a's link to the
// store is cut, so renewals fail and its term ends at its deadline; the
// handler calls Stop as soon as its context ends; and an OnEvent callback
// (which f0001dd runs in the candidate's loop) keeps the loop busy from the
// watch failure until just after that instant, so the loss and the stop
// are both pending when the loop next looks, and each schedule picks one at
// random. After the link heals, the store must not hold a's claim 3 TTLs
// later, and b (another elector, in line) must lead. Every one of the
// schedules must pass; f0001dd fails about half of them.
func TestDefect2StopRacingLossLeavesNoZombie(t *testing.T) {
	const schedules = 20
	var zombies []string
	for i := range schedules {
		synctest.Test(t, func(t *testing.T) {
			if z := stopRacingDeadlineLoss(t); z != "" {
				zombies = append(zombies, fmt.Sprintf("schedule %d: %s", i, z))
			}
		})
	}
	if len(zombies) > 0 {
		t.Errorf("%d of %d schedules left a zombie claim after Stop raced a deadline loss:\n%s",
			len(zombies), schedules, strings.Join(zombies, "\n"))
	}
}

// stopRacingDeadlineLoss runs one schedule of TestDefect2 and describes
// the zombie it left, if any.
func stopRacingDeadlineLoss(t *testing.T) string {
	store := memory.NewStore()
	clientA := store.NewClient()
	leaderCtx := make(chan context.Context, 1)
	var busy atomic.Bool
	cfgA := election.Config{TTL: defectTTL, RenewInterval: 2 * time.Second, DriftMargin: 4 * time.Second,
		OnEvent: func(ev election.Event) {
			if ev.Kind == election.EventWatchFailed && ev.Candidate == "a" && busy.CompareAndSwap(false, true) {
				ctx := <-leaderCtx
				<-ctx.Done()
				time.Sleep(time.Millisecond) // fake time moves once all else is blocked: the loss and the Stop are both pending
			}
		}}
	elA := mustElector(t, clientA, cfgA)
	elB := mustElector(t, store.NewClient(), election.Config{TTL: defectTTL})
	defer closeQuietly(elA, elB)
	var a *election.Candidate
	stopped := make(chan struct{})
	a = mustCandidate(t, elA, election.CandidateConfig{Name: "job", ID: "a", Handlers: []election.Handler{
		func(ctx context.Context, _ election.Term) {
			leaderCtx <- ctx
			<-ctx.Done()
			_ = a.Stop(context.Background())
			close(stopped)
		},
	}})
	b := mustCandidate(t, elB, election.CandidateConfig{Name: "job", ID: "b"})
	startAll(t, a, b)
	time.Sleep(3 * time.Second)
	if err := clientA.Cut(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-stopped // a's term ended at its deadline; its handler called Stop, which returned
	if err := clientA.Heal(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * defectTTL)
	if got := storeLeader(t, store.NewClient(), "job"); got == "a" || !b.IsLeader() {
		return fmt.Sprintf("3 TTLs after a stopped the store's leader is %s and b leads: %v", got, b.IsLeader())
	}
	return ""
}

// TestDefect3StopKeepsClaimUnderStuckLostHandler: defect 3, Stop while the
// handler of a lost term was stuck returned at once and released the key
// under that handler. a's renewals fail until its term ends at its deadline
// (the store still holds the claim: the link heals before the store's
// TTL); its handler ignores cancellation. Stop with a context that ends
// must report that it gave up (context.DeadlineExceeded), and the store must
// keep a's claim (checked over 3 TTLs) until the handler returns; only then
// may b, waiting in line on another elector, lead.
func TestDefect3StopKeepsClaimUnderStuckLostHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.NewStore()
		clientA := store.NewClient()
		lost := make(chan struct{})
		var lostOnce sync.Once
		cfgA := election.Config{TTL: defectTTL, RenewInterval: 2 * time.Second, DriftMargin: 4 * time.Second,
			OnEvent: func(ev election.Event) {
				if ev.Kind == election.EventLost && ev.Candidate == "a" {
					lostOnce.Do(func() { close(lost) })
				}
			}}
		elA := mustElector(t, clientA, cfgA)
		elB := mustElector(t, store.NewClient(), election.Config{TTL: defectTTL})
		defer closeQuietly(elA, elB)
		unblock, free := gate()
		defer free()
		var returned atomic.Bool
		a := mustCandidate(t, elA, election.CandidateConfig{Name: "job", ID: "a", Handlers: []election.Handler{
			func(ctx context.Context, _ election.Term) { <-ctx.Done(); <-unblock; returned.Store(true) },
		}})
		b := mustCandidate(t, elB, election.CandidateConfig{Name: "job", ID: "b"})
		startAll(t, a, b)
		time.Sleep(3 * time.Second)
		if err := clientA.Cut(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-lost
		if err := clientA.Heal(context.Background()); err != nil {
			t.Fatal(err)
		}

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := a.Stop(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Stop with the lost term's handler stuck = %v (handler returned: %v); "+
				"want it to give up with context.DeadlineExceeded and keep the claim", err, returned.Load())
		}
		for waited := time.Duration(0); waited <= 3*defectTTL; waited += defectTTL {
			if got := storeLeader(t, store.NewClient(), "job"); got != "a" || b.IsLeader() {
				t.Fatalf("%v after Stop, with the lost term's handler still running, the store's leader is %s (b leads: %v); "+
					"want a's claim kept until the handler returns", waited, got, b.IsLeader())
			}
			time.Sleep(defectTTL)
		}
		free()
		eventually(t, 3*defectTTL, b.IsLeader, "b elected after a's handler returned")
	})
}

// TestDefect4NoHandlerStartsPastDeadline: defect 4, handlers started before
// the deadline check, so a term born past its deadline (after a pause
// between the claim and the start) ran its handlers. The store grants a's
// first claim, then its answer is held back past the term's deadline (the
// session's last renewal + TTL − DriftMargin, read before the claim): no
// handler may run for that term. Later terms may run theirs.
func TestDefect4NoHandlerStartsPastDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const drift = time.Second
		fb := &faultyBackend{Backend: memory.New()}
		var bornDead atomic.Uint64
		fb.setHooks(faultHooks{afterWrite: func(_ *faultySession, cl election.Claim, holder *election.Leader, err error) {
			if err == nil && holder == nil && bornDead.CompareAndSwap(0, cl.Fence) {
				time.Sleep(defectTTL - drift + time.Millisecond) // the process pauses after the store granted the claim
			}
		}})
		el := mustElector(t, fb, election.Config{TTL: defectTTL, DriftMargin: drift})
		defer closeQuietly(el)
		var mu sync.Mutex
		var ran []uint64
		a := mustCandidate(t, el, election.CandidateConfig{Name: "job", ID: "a", Handlers: []election.Handler{
			func(ctx context.Context, term election.Term) {
				mu.Lock()
				ran = append(ran, term.Fence)
				mu.Unlock()
				<-ctx.Done()
			},
		}})
		startAll(t, a)
		time.Sleep(defectTTL)
		synctest.Wait()
		if bornDead.Load() == 0 {
			t.Fatal("the store granted no claim")
		}
		mu.Lock()
		defer mu.Unlock()
		for _, fence := range ran {
			if fence == bornDead.Load() {
				t.Fatalf("a handler ran for term %d, which started 1ms past its deadline; want no handler for a term born dead "+
					"(handlers ran for fences %v)", fence, ran)
			}
		}
	})
}

// TestDefect5ConfigRejectsScheduleWithoutRetry: defect 5, validation ignored
// RenewJitter and the renewal timeout: TTL 10s with RenewInterval 8.9s was
// accepted, although with the default 10% jitter a renewal may come 9.79s
// after the last, past the 9s deadline, so the leader lost on a healthy
// store. New must reject it with ErrInvalidArgument and show the
// arithmetic; a jitter of 0.5 must count too (RenewInterval 4s passes with
// 0.1 and fails with 0.5).
func TestDefect5ConfigRejectsScheduleWithoutRetry(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  election.Config
		want []string // in the error; none: accepted
	}{
		{"interval 8.9s", election.Config{TTL: defectTTL, RenewInterval: 8900 * time.Millisecond},
			[]string{"RenewJitter", "RenewTimeout", "8.9s×1.10", "= 18.74s", "TTL − DriftMargin = 10s − 1s = 9s"}},
		{"interval 4s, jitter 0.5", election.Config{TTL: defectTTL, RenewInterval: 4 * time.Second, RenewJitter: 0.5},
			[]string{"4s×1.50", "= 10.05s", "TTL − DriftMargin = 10s − 1s = 9s"}},
		{"interval 4s, jitter 0.1", election.Config{TTL: defectTTL, RenewInterval: 4 * time.Second, RenewJitter: 0.1}, nil},
	} {
		_, err := election.New(memory.New(), tc.cfg)
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: New = %v; want it accepted", tc.name, err)
		case tc.want == nil:
		case !errors.Is(err, election.ErrInvalidArgument):
			t.Errorf("%s: New = %v; want ErrInvalidArgument: the renewal schedule leaves no retry before the deadline", tc.name, err)
		default:
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: New = %q; want the arithmetic, with %q", tc.name, err, w)
				}
			}
		}
	}
}

// TestDefect5NoChurnAfterDeadlineLoss: defect 5, after a deadline loss the
// session's stale renewal time made every new claim a term born past its
// deadline, so the candidate claimed and lost in a tight loop (573 claims
// in 0.9s of fake time). A valid config; the store stays up and answers a
// claim in 1ms, but the answers to a's renewals are lost until 500ms after
// its term ended at its deadline. Over 3 TTLs after that, a may be granted
// one claim (two in all) and lose once, and must lead at the end.
func TestDefect5NoChurnAfterDeadlineLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fb := &faultyBackend{Backend: memory.New()}
		var granted atomic.Int64
		var answersLost atomic.Bool
		fb.setHooks(faultHooks{
			afterWrite: func(_ *faultySession, _ election.Claim, holder *election.Leader, err error) {
				if err == nil && holder == nil {
					granted.Add(1)
				}
				time.Sleep(time.Millisecond)
			},
			renew: func(ctx context.Context, s *faultySession, claims []election.Claim) error {
				err := s.inner.Renew(ctx, claims)
				if err == nil && answersLost.Load() {
					return fmt.Errorf("renewal answer lost: %w", election.ErrUnavailable)
				}
				return err
			},
		})
		var losses atomic.Int64
		lost := make(chan struct{})
		el := mustElector(t, fb, election.Config{TTL: defectTTL, RenewInterval: 2 * time.Second, DriftMargin: time.Second,
			OnEvent: func(ev election.Event) {
				if ev.Kind == election.EventLost && losses.Add(1) == 1 {
					close(lost)
				}
			}})
		defer closeQuietly(el)
		a := mustCandidate(t, el, election.CandidateConfig{Name: "job", ID: "a"})
		startAll(t, a)
		time.Sleep(3 * time.Second)
		answersLost.Store(true)
		<-lost
		time.Sleep(500 * time.Millisecond)
		answersLost.Store(false)
		time.Sleep(3 * defectTTL)
		synctest.Wait()
		g, l := granted.Load(), losses.Load()
		t.Logf("a was granted %d claims and lost leadership %d times", g, l)
		if g > 2 || l > 1 {
			t.Errorf("after one deadline loss, a was granted %d claims and lost leadership %d times in %v of fake time; "+
				"want at most 2 claims and 1 loss", g, l, 500*time.Millisecond+3*defectTTL)
		}
		if !a.IsLeader() {
			t.Errorf("a does not lead 3 TTLs after its renewals were answered again")
		}
	})
}

// TestDefect6EventsNeverCarryWholeToken: defect 6, the whole owner token of
// a lost claim leaked through Event.Err (NotOwnerError.Claims[].Token) on
// the renewed and lost events: errors.As handed it out and slog's JSON
// handler printed it. a's key vanishes from the store while its session
// lives (released behind its back within a renewal), so the renewal reports
// it not owned. Every event, and EventRenewed and EventLost in particular,
// must keep the token out of errors.As(Event.Err, *NotOwnerError), of
// Err.Error() and of a slog JSON rendering of the event.
func TestDefect6EventsNeverCarryWholeToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fb := &faultyBackend{Backend: memory.New()}
		var drop atomic.Bool
		var token atomic.Value
		fb.setHooks(faultHooks{renew: func(ctx context.Context, s *faultySession, claims []election.Claim) error {
			if len(claims) > 0 && drop.CompareAndSwap(true, false) {
				token.Store(claims[0].Token)
				if err := s.inner.Release(ctx, claims[0]); err != nil {
					return err
				}
			}
			return s.inner.Renew(ctx, claims)
		}})
		var mu sync.Mutex
		var events []election.Event
		el := mustElector(t, fb, election.Config{TTL: defectTTL, OnEvent: func(ev election.Event) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}})
		a := mustCandidate(t, el, election.CandidateConfig{Name: "job", ID: "a", Handlers: []election.Handler{
			func(ctx context.Context, _ election.Term) { <-ctx.Done() },
		}})
		startAll(t, a)
		time.Sleep(time.Second)
		drop.Store(true)
		time.Sleep(defectTTL)
		closeAll(t, el)

		tok, _ := token.Load().(string)
		if len(tok) <= len(election.TokenPrefix(tok)) {
			t.Fatalf("no claim was dropped, or its token %q is no longer than its prefix", tok)
		}
		mu.Lock()
		defer mu.Unlock()
		var renewedNotOwner, lostNotOwner bool
		for _, ev := range events {
			renewedNotOwner = renewedNotOwner || ev.Kind == election.EventRenewed && errors.Is(ev.Err, election.ErrNotOwner)
			lostNotOwner = lostNotOwner || ev.Kind == election.EventLost && ev.Reason == election.LossNotOwner
			var no *election.NotOwnerError
			if errors.As(ev.Err, &no) {
				for _, c := range no.Claims {
					if strings.Contains(c.Token, tok) {
						t.Errorf("%v event: errors.As(Event.Err, *NotOwnerError) hands out the whole owner token %q", ev.Kind, c.Token)
					}
				}
			}
			if ev.Err != nil && strings.Contains(ev.Err.Error(), tok) {
				t.Errorf("%v event: Err.Error() = %q carries the whole owner token", ev.Kind, ev.Err)
			}
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("election event", "event", ev)
			if strings.Contains(buf.String(), tok) {
				t.Errorf("%v event: slog's JSON handler prints the whole owner token: %s", ev.Kind, strings.TrimSpace(buf.String()))
			}
		}
		if !renewedNotOwner || !lostNotOwner {
			t.Errorf("want an EventRenewed whose Err is ErrNotOwner (got one: %v) and an EventLost with reason %q (got one: %v)",
				renewedNotOwner, election.LossNotOwner, lostNotOwner)
		}
	})
}

// TestDefect7NoTermStartsAfterStopReturned: defect 7, a term could start
// after Stop returned. The store grants a's first claim but its answer
// takes 300ms; Stop, called meanwhile with a 100ms context, must not
// return before the claim is settled, and no handler may start after it
// has returned; the claim must not be left in the store.
func TestDefect7NoTermStartsAfterStopReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fb := &faultyBackend{Backend: memory.New()}
		claimed := make(chan struct{})
		var slow atomic.Bool
		fb.setHooks(faultHooks{afterWrite: func(*faultySession, election.Claim, *election.Leader, error) {
			if slow.CompareAndSwap(false, true) {
				close(claimed)
				time.Sleep(300 * time.Millisecond) // the store granted the claim; its answer is slow
			}
		}})
		el := mustElector(t, fb, election.Config{TTL: defectTTL})
		defer closeQuietly(el)
		var stopReturned atomic.Bool
		var started, late atomic.Int64
		a := mustCandidate(t, el, election.CandidateConfig{Name: "job", ID: "a", Handlers: []election.Handler{
			func(ctx context.Context, _ election.Term) {
				started.Add(1)
				if stopReturned.Load() {
					late.Add(1)
				}
				<-ctx.Done()
			},
		}})
		startDone := make(chan error, 1)
		go func() { startDone <- a.Start(context.Background()) }()
		<-claimed
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		stopErr := a.Stop(ctx)
		cancel()
		stopReturned.Store(true)
		time.Sleep(defectTTL)
		synctest.Wait()
		<-startDone
		if n := late.Load(); n > 0 {
			t.Errorf("%d handler(s) started after Stop returned (Stop returned %v); want no term for a stopped candidate", n, stopErr)
		}
		if got := storeLeader(t, fb, "job"); got != "<vacant>" {
			t.Errorf("a TTL after Stop the store's leader is %s; want the claim released", got)
		}
	})
}

// TestDefect7QueuedCandidateRejoinsLineWithoutWatch: defect 7, a queued
// candidate relied on its watch alone. The store puts c's claim in line
// behind h, then c's session ends on the store before c hears the answer,
// and its elector learns that (a renewal finds the session gone) before c
// records the claim as waiting. The line went with the session, and the
// watch shows nothing (h still holds): c must rejoin the line on its own.
// When h then stops, the store must elect c from the line (EventClaimed
// with Queued), not by a claim c makes after its watch shows a vacancy.
func TestDefect7QueuedCandidateRejoinsLineWithoutWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.NewStore()
		fb := &faultyBackend{Backend: store.NewClient()}
		var dropped atomic.Bool
		fb.setHooks(faultHooks{afterWrite: func(s *faultySession, _ election.Claim, holder *election.Leader, err error) {
			if err == nil && holder != nil && dropped.CompareAndSwap(false, true) {
				_ = s.inner.Close(context.Background()) // the session ends on the store, with c's place in line
				<-s.closed                              // the elector found it gone and closed it
			}
		}})
		var mu sync.Mutex
		var events []election.Event
		elH := mustElector(t, store.NewClient(), election.Config{TTL: defectTTL})
		elC := mustElector(t, fb, election.Config{TTL: defectTTL, OnEvent: func(ev election.Event) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}})
		defer closeQuietly(elH, elC)
		h := mustCandidate(t, elH, election.CandidateConfig{Name: "job", ID: "h"})
		c := mustCandidate(t, elC, election.CandidateConfig{Name: "job", ID: "c"})
		startAll(t, h, c)
		time.Sleep(2 * defectTTL)
		synctest.Wait()
		count := func(want func(election.Event) bool) (n int) {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range events {
				if ev.Candidate == "c" && want(ev) {
					n++
				}
			}
			return n
		}
		if !dropped.Load() {
			t.Fatal("c's claim never went into the line")
		}
		queued := count(func(ev election.Event) bool { return ev.Kind == election.EventClaimTaken && ev.Queued })
		if queued < 2 {
			t.Errorf("2 TTLs after c's place in line went with its session, c joined the line %d time(s); "+
				"want it to rejoin when its elector found the session gone, not wait for its watch", queued)
		}
		ctx, cancel := context.WithTimeout(context.Background(), defectTTL)
		defer cancel()
		if err := h.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, 3*defectTTL, c.IsLeader, "c elected after h stopped")
		synctest.Wait() // OnEvent runs just after the fact
		if n := count(func(ev election.Event) bool { return ev.Kind == election.EventClaimed && ev.Queued }); n != 1 {
			t.Errorf("c was elected %d time(s) from the line; want once: it should have been in line when h stopped", n)
		}
	})
}

// TestDefect7CloseEndsObservers: defect 7, some goroutines were not
// tracked: an Observe goroutine outlived its elector's Close and kept
// watching the store. After Close, the Observe channel must be closed
// (its goroutine has returned) although the observer's own context is
// still live.
func TestDefect7CloseEndsObservers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		el := mustElector(t, memory.New(), election.Config{TTL: defectTTL})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		changes, err := el.Observe(ctx, "job")
		if err != nil {
			t.Fatal(err)
		}
		<-changes // the current state: vacant
		closeAll(t, el)
		for {
			synctest.Wait()
			select {
			case _, open := <-changes:
				if !open {
					return
				}
			default:
				t.Fatal("after Close returned, the Observe channel is still open: its goroutine outlives the elector")
			}
		}
	})
}

// TestDefect7NoSessionReopenedAfterClose: defect 7, the session could be
// reopened after Close. The store opens a's session on its first claim,
// but its answer takes 300ms; Close is called meanwhile with a 100ms
// context. Every session the store opened must have been closed by the
// elector once Close has returned and the dust settled (a TTL later):
// none may be kept, claimed through and left to expire.
func TestDefect7NoSessionReopenedAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fb := &faultyBackend{Backend: memory.New()}
		opening := make(chan struct{})
		var slow atomic.Bool
		var answered atomic.Value
		fb.setHooks(faultHooks{afterOpen: func(*faultySession) {
			if slow.CompareAndSwap(false, true) {
				close(opening)
				time.Sleep(300 * time.Millisecond) // the store opened the session; its answer is slow
				answered.Store(time.Now())
			}
		}})
		el := mustElector(t, fb, election.Config{TTL: defectTTL})
		a := mustCandidate(t, el, election.CandidateConfig{Name: "job", ID: "a"})
		startDone := make(chan error, 1)
		go func() { startDone <- a.Start(context.Background()) }()
		<-opening
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		closeErr := el.Close(ctx)
		cancel()
		closed := time.Now()
		time.Sleep(defectTTL)
		synctest.Wait()
		<-startDone
		if opened, open := fb.sessionCounts(); open > 0 {
			at, _ := answered.Load().(time.Time)
			t.Errorf("%d of %d sessions the store opened were never closed by the elector; the slow one was answered %v after "+
				"Close returned (%v): the elector took a session after Close", open, opened, at.Sub(closed), closeErr)
		}
	})
}

// faultyBackend wraps a Backend so that a test can step into its sessions'
// operations where the memory store of both versions has no control: hold
// an answer back after the store applied the operation (a slow network, a
// paused process), lose renewal answers, or change the store in the middle
// of a call.
type faultyBackend struct {
	election.Backend

	mu       sync.Mutex
	hooks    faultHooks
	sessions []*faultySession
}

// faultHooks are the points a test may step in at; nil ones do nothing.
type faultHooks struct {
	// afterOpen runs once the store opened a session, before the elector
	// hears of it.
	afterOpen func(s *faultySession)
	// afterWrite runs once the store answered a claim or an enqueue, before
	// the elector hears of it.
	afterWrite func(s *faultySession, cl election.Claim, holder *election.Leader, err error)
	// renew runs in place of Renew.
	renew func(ctx context.Context, s *faultySession, claims []election.Claim) error
}

func (b *faultyBackend) setHooks(h faultHooks) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hooks = h
}

func (b *faultyBackend) currentHooks() faultHooks {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hooks
}

// sessionCounts returns how many sessions were opened, and how many of them
// the elector has not closed.
func (b *faultyBackend) sessionCounts() (opened, open int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.sessions {
		select {
		case <-s.closed:
		default:
			open++
		}
	}
	return len(b.sessions), open
}

func (b *faultyBackend) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	inner, err := b.Backend.OpenSession(ctx, ttl)
	if err != nil {
		return nil, err
	}
	s := &faultySession{inner: inner, b: b, closed: make(chan struct{})}
	b.mu.Lock()
	b.sessions = append(b.sessions, s)
	b.mu.Unlock()
	if h := b.currentHooks().afterOpen; h != nil {
		h(s)
	}
	return s, nil
}

// faultySession is a session of a faultyBackend. It keeps the store's line
// (Enqueue) like the memory store it wraps.
type faultySession struct {
	inner     election.Session
	b         *faultyBackend
	closeOnce sync.Once
	closed    chan struct{} // closed when the elector closes the session
}

func (s *faultySession) TTL() time.Duration { return s.inner.TTL() }

func (s *faultySession) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	cl, err := s.inner.Claim(ctx, req)
	if h := s.b.currentHooks().afterWrite; h != nil {
		h(s, cl, nil, err)
	}
	return cl, err
}

func (s *faultySession) Enqueue(ctx context.Context, req election.ClaimRequest) (election.Claim, *election.Leader, error) {
	cl, holder, err := s.inner.(election.Queuer).Enqueue(ctx, req)
	if h := s.b.currentHooks().afterWrite; h != nil {
		h(s, cl, holder, err)
	}
	return cl, holder, err
}

func (s *faultySession) Renew(ctx context.Context, claims []election.Claim) error {
	if h := s.b.currentHooks().renew; h != nil {
		return h(ctx, s, claims)
	}
	return s.inner.Renew(ctx, claims)
}

func (s *faultySession) Release(ctx context.Context, c election.Claim) error {
	return s.inner.Release(ctx, c)
}

func (s *faultySession) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.closed) })
	return s.inner.Close(ctx)
}

// gate returns a channel and the function that closes it, once.
func gate() (<-chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}

// startAll starts the candidates in order.
func startAll(t *testing.T, cs ...*election.Candidate) {
	t.Helper()
	for _, c := range cs {
		if err := c.Start(context.Background()); err != nil {
			t.Fatalf("Start %s: %v", c.ID(), err)
		}
	}
}

// closeQuietly closes the electors, ignoring errors: the cleanup of a test
// that may have failed.
func closeQuietly(els ...*election.Elector) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*defectTTL)
	defer cancel()
	for _, el := range els {
		_ = el.Close(ctx)
	}
}

// storeLeader returns the ID of the election's holder as the store behind
// b reports it, or "<vacant>".
func storeLeader(t *testing.T, b election.Backend, name string) string {
	t.Helper()
	l, err := b.Leader(context.Background(), name)
	switch {
	case errors.Is(err, election.ErrNoLeader):
		return "<vacant>"
	case err != nil:
		t.Fatalf("Leader %q: %v", name, err)
	}
	return l.ID
}

// eventually waits in the bubble's fake time, up to within, for cond.
func eventually(t *testing.T, within time.Duration, cond func() bool, what string) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > within {
			t.Fatalf("not %s within %v", what, within)
		}
	}
}
