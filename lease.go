package election

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Lease is a one-shot exclusive lease, the Go form of GitLab's
// ExclusiveLease: held until its TTL runs out, renewed only when the holder
// asks, released only with its token. No goroutine runs for it.
//
// Unlike a Candidate, a Lease has no leader context: the holder must check
// [Lease.Valid] (or [Lease.Deadline]) before acting and pass [Lease.Fence]
// to the systems it writes to. Choose the TTL longer than the work, as the
// work is not exclusive once the TTL has passed.
type Lease struct {
	key   string
	id    string
	claim Claim
	sess  Session
	ttl   time.Duration
	drift time.Duration
	clock Clock

	mu       sync.Mutex
	deadline time.Time
	done     bool
}

// LeaseOptions tunes [TryLeaseWith]. The zero value is valid.
type LeaseOptions struct {
	// ID identifies the holder to [Backend.Leader] readers. Default: host,
	// pid and a random suffix.
	ID string
	// Metadata is shown to readers with the holder.
	Metadata map[string]string
	// DriftMargin is subtracted from the local deadline. Default TTL/10;
	// range (0, TTL/2], as for an Elector.
	DriftMargin time.Duration
	// Clock is the time source. Default: the system clock.
	Clock Clock
	// Rand is the source of the owner token and default ID, as
	// Config.Rand. Default: a ChaCha8 generator seeded from crypto/rand.
	Rand rand.Source
}

// TryLease takes the lease key for ttl if no one holds it. It returns a
// *TakenError (errors.Is ErrTaken) naming the holder when the lease is
// held, ErrInvalidArgument for a bad key or ttl, and ErrUnavailable when
// the store cannot be reached. It makes one attempt and never waits.
func TryLease(ctx context.Context, b Backend, key string, ttl time.Duration) (*Lease, error) {
	return TryLeaseWith(ctx, b, key, ttl, LeaseOptions{})
}

// TryLeaseWith is [TryLease] with options.
func TryLeaseWith(ctx context.Context, b Backend, key string, ttl time.Duration, opts LeaseOptions) (*Lease, error) {
	if b == nil {
		return nil, invalid("backend", "nil")
	}
	if opts.DriftMargin == 0 {
		opts.DriftMargin = ttl / 10
	}
	errs := validateTTL("ttl", "DriftMargin", ttl, opts.DriftMargin, b.Limits())
	if err := ValidateName(b, key); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rng := newLockedRand(opts.Rand)
	if opts.ID == "" {
		opts.ID = makeID(rng)
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock()
	}

	sent := opts.Clock.Now()
	sess, err := b.OpenSession(ctx, ttl)
	if err != nil {
		return nil, fmt.Errorf("election: lease %q: %w", key, err)
	}
	token := rng.token()
	cl, err := sess.Claim(ctx, ClaimRequest{Name: key, Token: token, ID: opts.ID, Metadata: opts.Metadata})
	if err != nil {
		var taken *TakenError
		closeCtx, cancel := context.WithTimeout(context.Background(), ttl)
		defer cancel()
		if !errors.As(err, &taken) && !errors.Is(err, ErrInvalidArgument) {
			// The claim may have been applied; release it by token.
			_, _ = releaseClaim(closeCtx, sess, Claim{Name: key, Token: token})
		}
		_ = sess.Close(closeCtx)
		return nil, fmt.Errorf("election: lease %q: %w", key, err)
	}
	return &Lease{
		key: key, id: opts.ID, claim: cl, sess: sess, ttl: sess.TTL(), drift: opts.DriftMargin, clock: opts.Clock,
		deadline: sent.Add(sess.TTL() - opts.DriftMargin),
	}, nil
}

// Key returns the lease's key.
func (l *Lease) Key() string { return l.key }

// ID returns the holder ID the lease was taken with ([LeaseOptions.ID], or
// the default made from host, pid and a random suffix): what
// [Backend.Leader] shows for the key while the lease is held, and what a
// *TakenError names to those who find it held. It identifies the holder to
// observers, not the right to renew or release: that is the owner token,
// which never leaves the Lease.
func (l *Lease) ID() string { return l.id }

// Fence returns the lease's fencing token, strictly greater than that of
// every earlier holder of the key.
func (l *Lease) Fence() uint64 { return l.claim.Fence }

// TTL returns the TTL the store granted.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Deadline returns the local time after which the lease must be treated as
// lost: the send time of the last successful take or renewal + TTL − drift
// margin.
func (l *Lease) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// Valid reports whether the lease is held and before its deadline.
func (l *Lease) Valid() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.done && l.clock.Now().Before(l.deadline)
}

// Renew extends the lease by its TTL if the store still holds it for this
// token. It returns an error wrapping ErrLost if it does not (the lease
// expired and may have been taken), ErrUnavailable if the store cannot be
// reached (the deadline is unchanged), and ErrStopped after Release.
func (l *Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	done := l.done
	l.mu.Unlock()
	if done {
		return fmt.Errorf("%w: lease %q released", ErrStopped, l.key)
	}
	sent := l.clock.Now()
	err := l.sess.Renew(ctx, []Claim{l.claim})
	switch {
	case err == nil:
		l.mu.Lock()
		if d := sent.Add(l.ttl - l.drift); d.After(l.deadline) {
			l.deadline = d
		}
		l.mu.Unlock()
		return nil
	case errors.Is(err, ErrNotOwner), errors.Is(err, ErrLost):
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
		closeCtx, cancel := context.WithTimeout(context.Background(), l.ttl)
		defer cancel()
		_ = l.sess.Close(closeCtx)
		return fmt.Errorf("%w: lease %q: %w", ErrLost, l.key, err)
	default:
		return fmt.Errorf("election: renew lease %q: %w", l.key, err)
	}
}

// Release gives the lease up if the store still holds it for this token,
// and ends its session. It returns ErrNotOwner if the lease had expired
// (possibly taken by another holder, which is left untouched). Release is
// idempotent.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return nil
	}
	l.done = true
	l.mu.Unlock()
	released, err := releaseClaim(ctx, l.sess, l.claim)
	if err == nil && !released {
		err = ErrNotOwner
	}
	if cerr := l.sess.Close(ctx); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("election: release lease %q: %w", l.key, err)
	}
	return nil
}
