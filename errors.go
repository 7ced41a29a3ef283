package election

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/electionkit/election/internal/recordfmt"
)

// Errors returned by the core and by backends. Backends wrap store errors
// with %w so that errors.Is reports both the sentinel and the native cause.
var (
	// ErrTaken means the election or lease is held by someone else. The
	// error is a *TakenError that names the holder.
	ErrTaken = errors.New("election: taken")
	// ErrNotOwner means a renew or release carried a token the store does
	// not hold; nothing was changed.
	ErrNotOwner = errors.New("election: not owner")
	// ErrLost means leadership or a lease ended without being released:
	// renewal failed past the deadline, the store no longer holds the claim,
	// or the session expired.
	ErrLost = errors.New("election: leadership lost")
	// ErrSessionExpired means the store session is gone; every claim made
	// through it is lost. It wraps ErrLost.
	ErrSessionExpired = fmt.Errorf("%w: session expired", ErrLost)
	// ErrNotLeader means an operation needs leadership this candidate does
	// not hold.
	ErrNotLeader = errors.New("election: not leader")
	// ErrNoLeader means the election is vacant.
	ErrNoLeader = errors.New("election: no leader")
	// ErrInvalidArgument means a name, TTL, URL, option or credential is
	// invalid. The error text names the field and the value's problem.
	ErrInvalidArgument = errors.New("election: invalid argument")
	// ErrUnavailable means the store could not be reached or did not answer
	// in time. The operation may be retried.
	ErrUnavailable = errors.New("election: store unavailable")
	// ErrStopped means the candidate or elector was stopped; it cannot be
	// started again.
	ErrStopped = errors.New("election: stopped")
	// ErrHandlersRunning means Stop, Resign or Close gave up waiting (its
	// context ended, or it was called from a handler) while handlers of a
	// term still run. Nothing is lost: the claim is kept, and renewed, until
	// they return, then released; Candidate.Done and Elector.Done report
	// that moment.
	ErrHandlersRunning = errors.New("election: handlers still running")

	// ErrFenceWentBack means a claim was answered with a fence no higher
	// than one the candidate had already seen for the election (its own
	// earlier term, or a holder its watch showed): the store lost data
	// (a restore without etcd's --bump-revision, an unreplicated write
	// lost in a failover). Fences never repeat: the claim is released and
	// not used, and claims are retried (wrapped with ErrUnavailable) until
	// the store's fences pass the one seen. A process started after the
	// loss has seen nothing and cannot tell.
	ErrFenceWentBack = errors.New("election: fence went back")

	// ErrNotARecord: a key where an election's record belongs holds a
	// value this library did not write in a format it reads (another
	// program, or a build from before record format 1;
	// docs/record-format.md). The election is treated as held by an
	// unknown writer, never as vacant. Errors wrapping it name the key and
	// never quote the value.
	ErrNotARecord = recordfmt.ErrNotARecord
)

// TakenError is returned by a claim when the election is held. It wraps
// [ErrTaken].
type TakenError struct {
	// Holder is the current holder. A zero Holder (empty ID, fence 0) means
	// the store refuses claims for a while although no one holds the
	// election, such as Redis's quarantine after a restart that lost data;
	// ExpiresIn then says when to try again, and no leader is reported.
	Holder Leader
	// ExpiresIn is the holder's remaining TTL if the store reported it
	// (zero otherwise). The core uses it to schedule the next claim.
	ExpiresIn time.Duration
}

func (e *TakenError) Error() string {
	return fmt.Sprintf("election: %q taken by %q (fence %d)", e.Holder.Election, e.Holder.ID, e.Holder.Fence)
}

// Unwrap returns [ErrTaken].
func (e *TakenError) Unwrap() error { return ErrTaken }

// NotOwnerError is returned by [Session.Renew] when the store no longer holds
// some of the claims for their owner. It wraps [ErrNotOwner]. The claims not
// listed were renewed. In errors and events the core hands out, each
// Claim's Token holds only its [TokenPrefix].
type NotOwnerError struct {
	// Claims are the claims that were not renewed.
	Claims []Claim
}

func (e *NotOwnerError) Error() string {
	names := make([]string, 0, len(e.Claims))
	for _, c := range e.Claims {
		names = append(names, fmt.Sprintf("%q", c.Name))
	}
	return "election: not owner of " + strings.Join(names, ", ")
}

// Unwrap returns [ErrNotOwner].
func (e *NotOwnerError) Unwrap() error { return ErrNotOwner }

// invalid returns an error wrapping ErrInvalidArgument that names the field.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}

// TokenPrefix returns the first characters of an owner token, safe to log.
// Whole tokens are never logged.
func TokenPrefix(token string) string {
	const n = 8
	if len(token) <= n {
		return token
	}
	return token[:n]
}
