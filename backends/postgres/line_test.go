package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/history"
)

// TestQueueBoundaryStress is TestExpiryBoundaryStress with a line: every
// worker enqueues; one in line learns it holds from a Leader read, which
// is also what promotes it when the holder's session has expired (the
// read settles the election: line.go; the probe also sends that settle
// directly, and claims). Holders and waiters alike renew
// at random around their TTL (waiters from 12ms before to 4ms after,
// holders from 3ms before to 1ms after), so promotions on expiry race the
// holder's renewal, and the judging of expired waiters races theirs. Terms are recorded as each worker believes them: from the
// reply that shows it holds (Enqueue's, or a Leader read's) to its
// release, or to its deadline (last renewal sent + TTL); the history
// checker reports any overlap and any fence that did not increase. A
// staller holds the holder's session row FOR SHARE now and then, so that
// renewals that judged it alive wait before they commit. With settle
// judging expiry by a plain read instead of re-checking the row it
// deletes, this test reports overlapping terms (see the commit that
// changed it).
func TestQueueBoundaryStress(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 2*time.Minute)
	var backends []*Backend
	for range 3 {
		backends = append(backends, newBackend(t, ctx, serverURL(srv.Addr, nil)))
	}
	stalls := stallHolderRows(t, ctx, srv.URL, 6*time.Second)
	st := runBoundaryWith(t, ctx, backends, 6*time.Second, queueWorker)
	t.Logf("holder session rows held FOR SHARE: %d times", stalls())
	t.Logf("terms begun from the line: %d, claims that left the line: %d", st.promoted.Load(), st.leftLine.Load())
	if st.refused.Load() == 0 || st.promoted.Load() == 0 || st.takeovers.Load() == 0 {
		t.Errorf("the run never reached the expiry boundary with a line: %d renewals refused, %d terms from the line, %d after an expiry",
			st.refused.Load(), st.promoted.Load(), st.takeovers.Load())
	}
}

// stallHolderRows holds the current holder's session row FOR SHARE for
// 2ms at a time, at random, for d, as a concurrent statement that reads
// the row with a lock would. A renewal that has already judged the row
// alive then waits for that lock before it commits (Postgres does not
// judge a row again that was only locked, not changed), which widens the
// moment in which a settle judging by a plain read would find the session
// expired while its renewal is about to succeed. It returns a function
// that waits for the staller to end and reports how many times it held
// a row.
func stallHolderRows(t *testing.T, ctx context.Context, url string, d time.Duration) (wait func() int) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		defer conn.Close(context.Background())
		rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		held := 0
		for stop := time.Now().Add(d); time.Now().Before(stop) && ctx.Err() == nil; {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				tag, err := tx.Exec(ctx, `SELECT 1 FROM public.election_sessions s JOIN public.election_claims c ON c.session_id = s.id
WHERE c.name = 'boundary' FOR SHARE OF s`)
				if err == nil && tag.RowsAffected() > 0 {
					held++
					time.Sleep(2 * time.Millisecond)
				}
				return err
			})
			if err != nil && ctx.Err() == nil {
				t.Errorf("staller: %v", err)
				break
			}
			time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		}
		done <- held
	}()
	return func() int { return <-done }
}

// probe reads the holder: through Leader, through a Claim with a token of
// its own (a Claim by a client in line never takes: its own claim waits
// above the fence), or through the settle a read makes when it finds the
// holder not alive with claims in line (settleNames: lock, settle, read),
// sent at once rather than after a plain read, so that settles come as
// close to the holder's renewal as the claims of TestExpiryBoundaryStress.
func probe(ctx context.Context, b *Backend, s election.Session, id string, rng *rand.Rand) (election.Leader, error) {
	switch rng.IntN(3) {
	case 0:
		return b.Leader(ctx, "boundary")
	case 1:
		states, err := b.settleNames(ctx, []string{"boundary"})
		switch st := states["boundary"]; {
		case err != nil:
			return election.Leader{}, err
		case st.leader != nil:
			return *st.leader, nil
		case st.due:
			return election.Leader{}, errLookAgain
		}
		return election.Leader{}, election.ErrNoLeader
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
			// Holders renew closer to the TTL than waiters, from 3ms
			// before to 1ms after: promotions on expiry come every few
			// hundred microseconds, and one that judged a renewed
			// session expired would overlap.
			var over bool
			lastRenew, over, err = holdTerm(ctx, s, c, id, ttl, lastRenew, 3*time.Millisecond, 4*time.Millisecond, rng, at, rec, st)
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
