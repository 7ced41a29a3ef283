package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/electionkit/election/internal/faultproxy"
)

// participant is one process of one library campaigning in one election.
type participant interface {
	// acquire blocks until the participant holds the election and returns
	// when it began to: when leader work could start (the first instruction
	// of our handler; the return of a peer's blocking acquire call).
	acquire(ctx context.Context) (time.Time, error)
	// release gives the election up gracefully: our Candidate.Stop, the
	// peers' Resign, Unlock or Release.
	release(ctx context.Context) error
	// close frees the participant's clients without releasing the election.
	close()
}

// crasher is a participant that can crash while it holds the election.
type crasher interface {
	participant
	// crash stops every byte between the holder and the store without a
	// release: it cuts the holder's fault proxy and stops its refreshing.
	crash(ctx context.Context) (crashInfo, error)
}

// crashInfo is what a crash tells the measurement.
type crashInfo struct {
	// cut is when the holder's link was cut.
	cut time.Time
	// lastRenewal is the send time of the last renewal the store received
	// for the holder; the store keeps the hold until at least
	// lastRenewal + ttl.
	lastRenewal time.Time
	// ttl is the TTL the store granted.
	ttl time.Duration
}

// stepDowner is a participant that knows when its leader work was told to
// stop: our handler's context.
type stepDowner interface {
	// steppedDown returns when the leader context of the participant's last
	// term ended, and false if it has not.
	steppedDown() (time.Time, bool)
}

// handoffPhaser is a participant that can split a handoff in phases: ours,
// from its events and Term.Since.
type handoffPhaser interface {
	// lastReleased returns when the participant's last release returned
	// (EventReleased's Time).
	lastReleased() time.Time
	// lastClaimSent returns the send time of the claim of the
	// participant's current term (Term.Since).
	lastClaimSent() time.Time
}

// library is one leader-election library in one configuration.
type library struct {
	// name is the sub-benchmark name.
	name string
	// join returns a participant of election on st. A non-nil link is the
	// fault proxy the participant must reach the store through, so that
	// crash can cut it.
	join func(ctx context.Context, st *store, election, id string, link *faultproxy.Proxy) (participant, error)
	// key returns the store key that holds election, for the Consul
	// observer; nil on the other stores.
	key func(election string) string
	// handoffs, when not nil, is the length of this library's handoff
	// series instead of -handoffs (a library that polls at a long
	// interval).
	handoffs *int
}

// Bounds and pauses of the scenarios. They bound waits; none is a timing
// assertion.
const (
	// settle is how long a waiter is left waiting before the holder
	// releases, so that it is in its steady waiting state (watch, blocking
	// query or retry loop established).
	settle = 150 * time.Millisecond
	// acquireTimeout bounds one wait for a hold, far above any expected
	// takeover (api.Lock waits out Consul's 15s lock-delay in 5s steps).
	acquireTimeout = 90 * time.Second
	// cleanupTimeout bounds releases and closes after a measurement.
	cleanupTimeout = 10 * time.Second
)

var electionSeq atomic.Int64

// newElection returns an election name used by no other run of this
// process, so that no state of an earlier run can interfere.
func newElection(lib string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, lib)
	return fmt.Sprintf("bench-%s-%d", clean, electionSeq.Add(1))
}

type acquired struct {
	at  time.Time
	err error
}

// goAcquire starts p.acquire and delivers its result on the returned
// channel. The call's context has a deadline acquireTimeout away: the
// retry loops of the Redis lock libraries are bounded by it (redislock
// without a deadline gives up after one TTL).
func goAcquire(ctx context.Context, p participant) <-chan acquired {
	out := make(chan acquired, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, acquireTimeout)
		defer cancel()
		at, err := p.acquire(ctx)
		out <- acquired{at, err}
	}()
	return out
}

// await waits for an acquire result, at most acquireTimeout.
func await(ctx context.Context, got <-chan acquired) (time.Time, error) {
	timer := time.NewTimer(acquireTimeout)
	defer timer.Stop()
	select {
	case r := <-got:
		return r.at, r.err
	case <-timer.C:
		return time.Time{}, fmt.Errorf("no acquire within %v", acquireTimeout)
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errTwoHolders marks a safety violation seen by a scenario.
var errTwoHolders = errors.New("two holders at once")

// handoffSamples are the measurements of a series of graceful handoffs.
type handoffSamples struct {
	// total: the waiter's hold minus the start of the release call.
	total []time.Duration
	// Ours only, splitting total: release, from the release call to the
	// return of the store's release (the old leader's step-down and the
	// release round trips); notice, from there to the new leader's claim
	// being sent (the store's notification reaching its loop); claim, from
	// there to its handler starting (the claim round trip).
	release, notice, claim []time.Duration
}

// runHandoffs measures n graceful handoffs between two participants of lib
// that swap roles every time: the holder releases while the other waits.
// Each sample is the time from the start of the release call to the
// waiter's hold. It fails on any error and on any overlap: the waiter
// holding before the release began, or (ours) the old leader's context
// still live when the new leader's handler started.
func runHandoffs(ctx context.Context, st *store, lib library, n int) (handoffSamples, error) {
	var s handoffSamples
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	election := newElection(lib.name)
	var ps [2]participant
	for i := range ps {
		p, err := lib.join(ctx, st, election, fmt.Sprintf("p%d", i), nil)
		if err != nil {
			return s, fmt.Errorf("join: %w", err)
		}
		defer p.close()
		ps[i] = p
	}
	if _, err := await(ctx, goAcquire(ctx, ps[0])); err != nil {
		return s, fmt.Errorf("first acquire: %w", err)
	}
	holder := 0
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		_ = ps[holder].release(ctx)
	}()

	for i := range n {
		leader, waiter := ps[holder], ps[1-holder]
		got := goAcquire(ctx, waiter)
		if err := sleepCtx(ctx, settle); err != nil {
			return s, err
		}
		select {
		case r := <-got:
			return s, fmt.Errorf("handoff %d: %w: the waiter acquired (err %v) while the leader held", i, errTwoHolders, r.err)
		default:
		}
		released := time.Now()
		if err := leader.release(ctx); err != nil {
			return s, fmt.Errorf("handoff %d: release: %w", i, err)
		}
		at, err := await(ctx, got)
		if err != nil {
			return s, fmt.Errorf("handoff %d: waiter: %w", i, err)
		}
		if at.Before(released) {
			return s, fmt.Errorf("handoff %d: %w: the waiter held %v before the release began", i, errTwoHolders, released.Sub(at))
		}
		if sd, ok := leader.(stepDowner); ok {
			end, ended := sd.steppedDown()
			if !ended || end.After(at) {
				return s, fmt.Errorf("handoff %d: %w: the old leader's context was live when the new leader started", i, errTwoHolders)
			}
		}
		s.total = append(s.total, at.Sub(released))
		lp, ok1 := leader.(handoffPhaser)
		wp, ok2 := waiter.(handoffPhaser)
		if ok1 && ok2 {
			done, sent := lp.lastReleased(), wp.lastClaimSent()
			s.release = append(s.release, done.Sub(released))
			s.notice = append(s.notice, sent.Sub(done))
			s.claim = append(s.claim, at.Sub(sent))
		}
		holder = 1 - holder
	}
	return s, nil
}

// crashSamples are the measurements of a series of crash takeovers.
type crashSamples struct {
	// afterTTL: the waiter's hold minus (last renewal's send time + TTL).
	afterTTL []time.Duration
	// fromCut: the waiter's hold minus the time of the cut.
	fromCut []time.Duration
	// react: the waiter's hold minus when an observer saw the store drop
	// the crashed holder (etcd key deleted, Consul session invalidated);
	// empty on Redis, which announces no expiry.
	react []time.Duration
}

// runCrashes measures n crash takeovers of lib: in a fresh election, A
// (behind a fault proxy) holds, B waits, A crashes, B takes over. It fails
// on any error, if B takes over before A's last renewal could have expired
// on the store, and (ours) if A's leader context was still live when B
// started.
func runCrashes(ctx context.Context, st *store, lib library, n int) (crashSamples, error) {
	var s crashSamples
	for i := range n {
		if err := crashOnce(ctx, st, lib, &s); err != nil {
			return s, fmt.Errorf("crash %d: %w", i, err)
		}
	}
	return s, nil
}

func crashOnce(ctx context.Context, st *store, lib library, s *crashSamples) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	election := newElection(lib.name)
	link, err := faultproxy.New(st.addr)
	if err != nil {
		return err
	}
	// Closing the proxy first makes the crashed holder's late calls fail
	// at once instead of hanging.
	defer link.Close()

	p, err := lib.join(ctx, st, election, "a", link)
	if err != nil {
		return fmt.Errorf("join a: %w", err)
	}
	defer func() {
		link.Close()
		p.close()
	}()
	a, ok := p.(crasher)
	if !ok {
		return fmt.Errorf("%s cannot crash", lib.name)
	}
	if _, err := await(ctx, goAcquire(ctx, a)); err != nil {
		return fmt.Errorf("a acquire: %w", err)
	}
	b, err := lib.join(ctx, st, election, "b", nil)
	if err != nil {
		return fmt.Errorf("join b: %w", err)
	}
	defer b.close()
	got := goAcquire(ctx, b)
	// Long enough for A to renew and B to settle into waiting, plus a
	// random part so that crashes do not keep one phase against the store's
	// periodic work (etcd checks lease expiry every 500ms).
	if err := sleepCtx(ctx, time.Second+rand.N(500*time.Millisecond)); err != nil {
		return err
	}
	select {
	case r := <-got:
		return fmt.Errorf("%w: b acquired (err %v) while a held", errTwoHolders, r.err)
	default:
	}
	dropped, err := st.watchDrop(ctx, lib, election)
	if err != nil {
		return fmt.Errorf("observer: %w", err)
	}
	info, err := a.crash(ctx)
	if err != nil {
		return fmt.Errorf("crash: %w", err)
	}
	at, err := await(ctx, got)
	if err != nil {
		return fmt.Errorf("b acquire: %w", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		_ = b.release(ctx)
	}()

	expiry := info.lastRenewal.Add(info.ttl)
	if at.Before(expiry) {
		return fmt.Errorf("%w: b held %v before a's last renewal (sent %v before the cut) could expire",
			errTwoHolders, expiry.Sub(at), info.cut.Sub(info.lastRenewal))
	}
	if sd, ok := p.(stepDowner); ok {
		end, ended := sd.steppedDown()
		if !ended || !end.Before(at) {
			return fmt.Errorf("%w: a's leader context was live when b started", errTwoHolders)
		}
	}
	s.afterTTL = append(s.afterTTL, at.Sub(expiry))
	s.fromCut = append(s.fromCut, at.Sub(info.cut))
	if dropped != nil {
		select {
		case seen := <-dropped:
			s.react = append(s.react, at.Sub(seen))
		case <-time.After(cleanupTimeout):
			return fmt.Errorf("the observer did not see the store drop a within %v of b's takeover", cleanupTimeout)
		}
	}
	return nil
}
