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
	const (
		backends = 3
		workers  = 4 // per backend
		ttl      = 150 * time.Millisecond
		run      = 6 * time.Second
	)
	var (
		clockMu sync.Mutex
		stamp   time.Time
	)
	rec := history.New(func() time.Time { return stamp })
	at := func(when time.Time, fn func()) {
		clockMu.Lock()
		defer clockMu.Unlock()
		stamp = when
		fn()
	}
	var takeovers, refused, renewed, released atomic.Int64
	stop := time.Now().Add(run)
	var wg sync.WaitGroup
	for bi := range backends {
		b := newBackend(t, ctx, serverURL(srv.Addr, nil))
		for wi := range workers {
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				if err := boundaryWorker(ctx, b, id, ttl, stop, at, rec, &takeovers, &refused, &renewed, &released); err != nil {
					t.Errorf("%s: %v", id, err)
				}
			}(fmt.Sprintf("w%d.%d", bi, wi))
		}
	}
	wg.Wait()
	t.Logf("terms: %d, renewals: %d, renewals refused (expired): %d, releases: %d, claims that followed an expiry: %d",
		len(rec.Runs()), renewed.Load(), refused.Load(), released.Load(), takeovers.Load())
	for _, v := range rec.Check(history.Bounds{End: time.Now()}) {
		t.Error(v)
	}
	if refused.Load() == 0 || takeovers.Load() == 0 {
		t.Errorf("the run never reached the expiry boundary: %d renewals refused, %d takeovers after expiry", refused.Load(), takeovers.Load())
	}
}

// expired is set when a holder lost its term to expiry, and cleared by the
// next claim: that claim was a takeover of an expired session.
var expired atomic.Bool

// boundaryWorker claims the election until stop; when it holds it, it
// renews at random around the TTL and sometimes releases.
func boundaryWorker(ctx context.Context, b *Backend, id string, ttl time.Duration, stop time.Time,
	at func(time.Time, func()), rec *history.Recorder, takeovers, refused, renewed, released *atomic.Int64) error {
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
			sent := time.Now()
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
			var term *history.Run
			at(time.Now(), func() { term = rec.Begin(id, election.Term{Election: "boundary", ID: id, Fence: c.Fence}) })
			_ = sent
			if expired.Swap(false) {
				takeovers.Add(1)
			}
			renews := 1 + rng.IntN(5)
			lost := false
			for i := 0; i < renews && !lost; i++ {
				// Renew somewhere between 12ms before and 4ms after the
				// TTL from the last renewal sent.
				wait := time.Until(lastRenew.Add(ttl - 12*time.Millisecond + time.Duration(rng.IntN(16000))*time.Microsecond))
				time.Sleep(wait)
				sent := time.Now()
				err := s.Renew(ctx, []election.Claim{c})
				switch {
				case err == nil:
					renewed.Add(1)
					lastRenew = sent
				case errors.Is(err, election.ErrSessionExpired) || errors.Is(err, election.ErrNotOwner):
					refused.Add(1)
					lost = true
				default:
					return err
				}
			}
			if lost {
				expired.Store(true)
				end := lastRenew.Add(ttl)
				at(end, term.Return)
				break
			}
			at(time.Now(), term.Return)
			if err := s.Release(ctx, c); err == nil {
				released.Add(1)
			} else if !errors.Is(err, election.ErrNotOwner) {
				return err
			}
		}
		_ = s.Close(ctx)
	}
	return nil
}
