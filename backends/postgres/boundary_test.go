package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/history"
)

// TestExpiryBoundaryStress hammers the moment a holder's session expires:
// holders renew at random just before or just after their TTL, while every
// other worker claims in a tight loop, through several Backends (pools and
// renewal connections) at once. Each term is recorded as the holder
// believes it: from its claim's reply to the release it sends, or to its
// deadline, the send time of its last successful renewal plus the TTL
// (the core's deadline with no drift margin). The history checker then
// finds any term that began while an earlier one was still believed held,
// and any fence that did not increase. A takeover that judged a session
// expired from a snapshot older than a just-committed renewal (the READ
// COMMITTED race) shows up as such an overlap.
func TestExpiryBoundaryStress(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 2*time.Minute)
	var backends []*Backend
	for range 3 {
		backends = append(backends, newBackend(t, ctx, serverURL(srv.Addr, nil)))
	}
	st := runBoundary(t, ctx, backends, 6*time.Second)
	if st.refused.Load() == 0 || st.takeovers.Load() == 0 {
		t.Errorf("the run never reached the expiry boundary: %d renewals refused, %d takeovers after expiry",
			st.refused.Load(), st.takeovers.Load())
	}
}

// boundaryStats counts what a boundary run did.
type boundaryStats struct {
	terms                                 int
	takeovers, refused, renewed, released atomic.Int64
	promoted, leftLine                    atomic.Int64 // queue runs: terms begun from the line; claims that left it
}

// worker is one client of a boundary run.
type worker func(ctx context.Context, b *Backend, id string, ttl time.Duration, stop time.Time,
	at func(time.Time, func()), rec *history.Recorder, st *boundaryStats) error

// runBoundary runs four boundaryWorkers (TTL 150ms) per backend for d,
// checks the history they recorded, failing the test on any violation, and
// returns the counts.
func runBoundary(t *testing.T, ctx context.Context, backends []*Backend, d time.Duration) *boundaryStats {
	t.Helper()
	return runBoundaryWith(t, ctx, backends, d, boundaryWorker)
}

// runBoundaryWith is runBoundary with workers of work.
func runBoundaryWith(t *testing.T, ctx context.Context, backends []*Backend, d time.Duration, work worker) *boundaryStats {
	t.Helper()
	var (
		clockMu sync.Mutex
		stamp   time.Time
	)
	// Times are recorded as the workers measured them, not when they call.
	rec := history.New(func() time.Time { return stamp })
	at := func(when time.Time, fn func()) {
		clockMu.Lock()
		defer clockMu.Unlock()
		stamp = when
		fn()
	}
	st := &boundaryStats{}
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for bi, b := range backends {
		for wi := range 4 {
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				if err := work(ctx, b, id, 150*time.Millisecond, stop, at, rec, st); err != nil {
					t.Errorf("%s: %v", id, err)
				}
			}(fmt.Sprintf("w%d.%d", bi, wi))
		}
	}
	wg.Wait()
	st.terms = len(rec.Runs())
	t.Logf("terms: %d, renewals: %d, renewals refused (expired): %d, releases: %d, claims that followed an expiry: %d",
		st.terms, st.renewed.Load(), st.refused.Load(), st.released.Load(), st.takeovers.Load())
	for _, v := range rec.Check(history.Bounds{End: time.Now()}) {
		t.Error(v)
	}
	return st
}

// expired is set when a holder lost its term to expiry, and cleared by the
// next claim: that claim was a takeover of an expired session.
var expired atomic.Bool

// boundaryWorker claims the election until stop; when it holds it, it
// renews at random around the TTL and sometimes releases.
func boundaryWorker(ctx context.Context, b *Backend, id string, ttl time.Duration, stop time.Time,
	at func(time.Time, func()), rec *history.Recorder, st *boundaryStats) error {
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	for time.Now().Before(stop) {
		lastRenew := time.Now() // the session lives from its open's send time
		s, err := b.OpenSession(ctx, ttl)
		if err != nil {
			return err
		}
		for time.Now().Before(stop) {
			if time.Since(lastRenew) > ttl/3 {
				sent := time.Now()
				if err := s.Renew(ctx, nil); err != nil {
					break // expired while waiting: a new session
				}
				lastRenew = sent
			}
			c, err := s.Claim(ctx, election.ClaimRequest{Name: "boundary", ID: id, Token: id + "-" + fmt.Sprint(rng.Uint64())})
			var taken *election.TakenError
			if errors.As(err, &taken) {
				time.Sleep(time.Duration(rng.IntN(1500)) * time.Microsecond)
				continue
			}
			if errors.Is(err, election.ErrSessionExpired) {
				break
			}
			if err != nil {
				return err
			}
			// Renew somewhere between 12ms before and 4ms after the TTL
			// from the last renewal sent.
			var over bool
			lastRenew, over, err = holdTerm(ctx, s, c, id, ttl, lastRenew, 12*time.Millisecond, 16*time.Millisecond, rng, at, rec, st)
			if err != nil {
				return err
			}
			if over {
				break
			}
		}
		_ = s.Close(ctx)
	}
	return nil
}

// holdTerm holds claim c, which session s (last renewed at lastRenew)
// has just made or learnt it holds, as a boundary worker: it records the
// term as the worker believes it, renews one to five times at random from
// early before to window-early after the TTL, and releases; it returns the
// last renewal's send time and whether the session is over (the term was
// lost, or the claim came after the session's deadline). A term that
// followed a loss by expiry counts as a takeover.
func holdTerm(ctx context.Context, s election.Session, c election.Claim, id string, ttl time.Duration, lastRenew time.Time,
	early, window time.Duration, rng *rand.Rand, at func(time.Time, func()), rec *history.Recorder, st *boundaryStats) (time.Time, bool, error) {
	if !time.Now().Before(lastRenew.Add(ttl)) {
		// The reply came after the session's deadline (a slow round
		// trip): like the core, never start the term.
		_ = s.Release(ctx, c)
		return lastRenew, true, nil
	}
	var term *history.Run
	at(time.Now(), func() { term = rec.Begin(id, election.Term{Election: "boundary", ID: id, Fence: c.Fence}) })
	if expired.Swap(false) {
		st.takeovers.Add(1)
	}
	renews := 1 + rng.IntN(5)
	for range renews {
		time.Sleep(time.Until(lastRenew.Add(ttl - early + time.Duration(rng.Int64N(int64(window))))))
		sent := time.Now()
		err := s.Renew(ctx, []election.Claim{c})
		switch {
		case err == nil:
			st.renewed.Add(1)
			lastRenew = sent
		case errors.Is(err, election.ErrSessionExpired) || errors.Is(err, election.ErrNotOwner):
			st.refused.Add(1)
			expired.Store(true)
			at(lastRenew.Add(ttl), term.Return)
			return lastRenew, true, nil
		default:
			return lastRenew, true, err
		}
	}
	at(time.Now(), term.Return)
	if err := s.Release(ctx, c); err == nil {
		st.released.Add(1)
	} else if !errors.Is(err, election.ErrNotOwner) {
		return lastRenew, true, err
	}
	return lastRenew, false, nil
}
