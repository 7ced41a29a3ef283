package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/teststore"
)

// serverOffset is how far the server's clock_timestamp() is from this
// process's clock, to the second.
func serverOffset(t *testing.T, ctx context.Context, b *Backend) time.Duration {
	t.Helper()
	before := time.Now()
	var now time.Time
	if err := b.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	return now.Sub(before).Round(time.Second)
}

// stepTo steps the server's clock to offset and waits until a statement
// sees it.
func stepTo(t *testing.T, ctx context.Context, clock *teststore.SteppedClock, b *Backend, offset time.Duration) {
	t.Helper()
	clock.Set(t, offset)
	for serverOffset(t, ctx, b) != offset {
		select {
		case <-ctx.Done():
			t.Fatalf("the server's clock did not step to %v", offset)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestServerClockStep steps the wall clock of a real postgres (under
// libfaketime; this process keeps the real time). Forward by more than a
// holder's remaining TTL: its session is expired at once by the server's
// reckoning, a claim takes the election while the holder still leads, and
// the holder learns at its next renewal (ErrSessionExpired). Back by an
// hour: a holder that stops renewing (a crash) keeps its claim an hour
// longer; a claimant is told it expires later than a TTL from now.
func TestServerClockStep(t *testing.T) {
	clock := teststore.NewSteppedClock(t)
	srv := teststore.StartPostgres(t, teststore.PostgresOptions{Env: clock.Env()})
	ctx := testContext(t, time.Minute)
	b := newBackend(t, ctx, serverURL(srv.Addr, nil))
	const ttl = 10 * time.Second

	holder := openSession(t, ctx, b, ttl)
	held, err := holder.Claim(ctx, request("forward", "a"))
	if err != nil {
		t.Fatal(err)
	}
	stepTo(t, ctx, clock, b, 30*time.Second)
	next := openSession(t, ctx, b, ttl)
	c, err := next.Claim(ctx, request("forward", "b"))
	if err != nil || c.Fence <= held.Fence {
		t.Fatalf("claim after a forward step of 30s (TTL %v) = %+v, %v; want a new term while the holder leads", ttl, c, err)
	}
	if err := holder.Renew(ctx, []election.Claim{held}); !errors.Is(err, election.ErrSessionExpired) {
		t.Fatalf("the holder's renewal after a forward step = %v, want ErrSessionExpired", err)
	}

	crashed := openSession(t, ctx, b, ttl)
	if _, err := crashed.Claim(ctx, request("back", "a")); err != nil {
		t.Fatal(err)
	}
	stepTo(t, ctx, clock, b, 30*time.Second-time.Hour)
	var taken *election.TakenError
	if _, err := next.Claim(ctx, request("back", "b")); !errors.As(err, &taken) || taken.ExpiresIn <= time.Hour {
		t.Fatalf("claim after a backward step of an hour = %v; want taken, expiring more than an hour from now", err)
	}
}
