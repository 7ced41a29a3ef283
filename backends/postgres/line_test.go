package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/history"
)

// TestQueueBoundaryStress is TestExpiryBoundaryStress with a line: every
// worker enqueues; one in line learns it holds from a Leader read, which
// is also what promotes it when the holder's session has expired (the
// read settles the election: line.go). Holders and waiters alike renew
// at random around their TTL (waiters from 12ms before to 4ms after,
// holders from 3ms before to 1ms after), so promotions on expiry race the
// holder's renewal, and the judging of expired waiters races theirs. Terms are recorded as each worker believes them: from the
// reply that shows it holds (Enqueue's, or a Leader read's) to its
// release, or to its deadline (last renewal sent + TTL); the history
// checker reports any overlap and any fence that did not increase. With
// settle judging expiry by a plain read instead of deleting the session
// row, this test reports overlapping terms (see the commit that added it).
func TestQueueBoundaryStress(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 2*time.Minute)
	var backends []*Backend
	for range 3 {
		backends = append(backends, newBackend(t, ctx, serverURL(srv.Addr, nil)))
	}
	st := runBoundaryWith(t, ctx, backends, 6*time.Second, queueWorker)
	t.Logf("terms begun from the line: %d, claims that left the line: %d", st.promoted.Load(), st.leftLine.Load())
	if st.refused.Load() == 0 || st.promoted.Load() == 0 || st.takeovers.Load() == 0 {
		t.Errorf("the run never reached the expiry boundary with a line: %d renewals refused, %d terms from the line, %d after an expiry",
			st.refused.Load(), st.promoted.Load(), st.takeovers.Load())
	}
}

// probe reads the holder: through Leader, or through a Claim with a
// token of its own, which settles the election in the round trip that
// locks it (a read settles only after a plain read found it due), so
// that promotions on expiry come as close to the holder's renewal as a
// claim's takeover does in TestExpiryBoundaryStress. A Claim by a client
// in line never takes: its own claim waits above the fence.
func probe(ctx context.Context, b *Backend, s election.Session, id string, rng *rand.Rand) (election.Leader, error) {
	if rng.IntN(2) == 0 {
		return b.Leader(ctx, "boundary")
	}
	_, err := s.Claim(ctx, election.ClaimRequest{Name: "boundary", ID: id, Token: id + "-probe-" + fmt.Sprint(rng.Uint64())})
	var taken *election.TakenError
	switch {
	case errors.As(err, &taken) && taken.Holder.Fence == 0:
		return election.Leader{}, errLookAgain
	case errors.As(err, &taken):
		return taken.Holder, nil
	case err == nil:
		return election.Leader{}, errors.New("a claim by a client in line took the election")
	}
	return election.Leader{}, err
}

// errLookAgain: the holder's session expired as the probe looked.
var errLookAgain = errors.New("look again")

// queueWorker enqueues until stop; in line, it renews its session around
// the TTL and reads the leader until it holds or is out of line; holding,
// it renews around the TTL and sometimes releases.
func queueWorker(ctx context.Context, b *Backend, id string, ttl time.Duration, stop time.Time,
	at func(time.Time, func()), rec *history.Recorder, st *boundaryStats) error {
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	renewAt := func() time.Duration {
		return ttl - 12*time.Millisecond + time.Duration(rng.IntN(16000))*time.Microsecond
	}
	for time.Now().Before(stop) {
		lastRenew := time.Now() // the session lives from its open's send time
		s, err := b.OpenSession(ctx, ttl)
		if err != nil {
			return err
		}
		q := s.(election.Queuer)
	session:
		for time.Now().Before(stop) {
			c, holder, err := q.Enqueue(ctx, election.ClaimRequest{Name: "boundary", ID: id, Token: id + "-" + fmt.Sprint(rng.Uint64())})
			if errors.Is(err, election.ErrSessionExpired) {
				break
			}
			if err != nil {
				return err
			}
			held := holder == nil
			next := renewAt()
			for !held {
				if !time.Now().Before(stop) {
					_ = s.Release(ctx, c)
					break session
				}
				time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
				if time.Since(lastRenew) >= next {
					sent := time.Now()
					if err := s.Renew(ctx, nil); err != nil {
						if !errors.Is(err, election.ErrSessionExpired) {
							return err
						}
						st.leftLine.Add(1)
						break session // expired in line: a new session
					}
					lastRenew, next = sent, renewAt()
				}
				l, err := probe(ctx, b, s, id, rng)
				switch {
				case err == nil && l.Fence == c.Fence:
					if !time.Now().Before(lastRenew.Add(ttl)) {
						break session // elected past its own deadline: never leads
					}
					held = true
					st.promoted.Add(1)
				case errors.Is(err, errLookAgain) || (err == nil && l.Fence < c.Fence):
					// Still in line.
				case errors.Is(err, election.ErrSessionExpired):
					st.leftLine.Add(1)
					break session
				case err == nil || errors.Is(err, election.ErrNoLeader):
					// Out of line (a later claim leads, or none): leave and join again.
					if err := s.Release(ctx, c); err != nil && !errors.Is(err, election.ErrNotOwner) {
						return err
					}
					st.leftLine.Add(1)
					continue session
				default:
					return err
				}
			}
			if !time.Now().Before(lastRenew.Add(ttl)) {
				// The reply came after the session's deadline (a slow
				// round trip): like the core, never start the term.
				_ = s.Release(ctx, c)
				break
			}
			var term *history.Run
			at(time.Now(), func() { term = rec.Begin(id, election.Term{Election: "boundary", ID: id, Fence: c.Fence}) })
			if expired.Swap(false) {
				st.takeovers.Add(1)
			}
			renews := 1 + rng.IntN(5)
			lost := false
			for i := 0; i < renews && !lost; i++ {
				// Holders renew closer to the TTL than waiters, from 3ms
				// before to 1ms after: promotions on expiry come every
				// few hundred microseconds, and one that judged a
				// renewed session expired would overlap.
				time.Sleep(time.Until(lastRenew.Add(ttl - 3*time.Millisecond + time.Duration(rng.IntN(4000))*time.Microsecond)))
				sent := time.Now()
				err := s.Renew(ctx, []election.Claim{c})
				switch {
				case err == nil:
					st.renewed.Add(1)
					lastRenew = sent
				case errors.Is(err, election.ErrSessionExpired) || errors.Is(err, election.ErrNotOwner):
					st.refused.Add(1)
					lost = true
				default:
					return err
				}
			}
			if lost {
				expired.Store(true)
				at(lastRenew.Add(ttl), term.Return)
				break
			}
			at(time.Now(), term.Return)
			if err := s.Release(ctx, c); err == nil {
				st.released.Add(1)
			} else if !errors.Is(err, election.ErrNotOwner) {
				return err
			}
		}
		_ = s.Close(ctx)
	}
	return nil
}
