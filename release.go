package election

import (
	"context"
	"errors"
	"fmt"
)

// Releasing a claim by its token has one path, releaseClaim; the elector
// adds the retries: a claim whose release (or whose claim) the store did
// not answer may still be held, and on stores whose claims live as long as
// the session (etcd, Consul) the session's renewals would keep it alive for
// ever, leaving the election held by no one. The elector keeps such claims
// in pending and releases them by token, after each renewal and before any
// new claim of the same election, until the store answers.

// releaseClaim releases c through s. released is false when the store did
// not hold c for its token (ErrNotOwner: nothing was changed); err is any
// other failure, in which case the outcome is unknown.
func releaseClaim(ctx context.Context, s Session, c Claim) (released bool, err error) {
	err = s.Release(ctx, c)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotOwner):
		return false, nil
	default:
		return false, err
	}
}

// pendingRelease is a claim the store may hold for this elector although no
// candidate holds it any more.
type pendingRelease struct {
	sess  *session
	claim Claim
}

// release makes one attempt, bounded by OpTimeout, to release c; a claim
// the store no longer holds counts as released. If the store does not
// answer, the claim is left pending and the error (wrapping ErrUnavailable
// where the backend says so) is returned.
func (e *Elector) release(s *session, c Claim) error {
	if s.isDead() {
		return nil // the store dropped every claim of the session
	}
	if e.leaveToSessionEnd(s, c) {
		return nil
	}
	e.ops <- struct{}{} // a release always goes through: no way out but waiting
	defer func() { <-e.ops }()
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.OpTimeout)
	defer cancel()
	if _, err := releaseClaim(ctx, s.s, c); err != nil {
		e.releaseLater(s, c)
		return fmt.Errorf("election: release %q (fence %d): %w; retried in the background", c.Name, c.Fence, redact(err))
	}
	return nil
}

// leaveToSessionEnd reports whether c, whose candidate Close has stopped,
// is left to the end of the session (see [SessionEnder]) rather than
// released now. Close ends the session once every candidate has stopped,
// so the claim outlives its handlers.
func (e *Elector) leaveToSessionEnd(s *session, c Claim) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.endBySession || e.sess != s {
		return false
	}
	e.deferred = append(e.deferred, pendingRelease{sess: s, claim: c})
	return true
}

// releaseDeferred stops leaving claims to the session's end and releases
// those left so far, one by one, in a goroutine of the elector's (finish
// waits for it), within OpTimeout: Close does not wait for it, so that its
// time stays bounded by its context. What the store does not answer stays
// pending.
func (e *Elector) releaseDeferred() {
	e.mu.Lock()
	e.endBySession = false
	todo := e.deferred
	e.deferred = nil
	start := len(todo) > 0 && !e.finishing
	e.pending = append(e.pending, todo...)
	if start {
		e.loops.Add(1)
	}
	e.mu.Unlock()
	if !start {
		return
	}
	go func() {
		defer e.loops.Done()
		ctx, cancel := context.WithTimeout(e.life, e.cfg.OpTimeout)
		defer cancel()
		e.releasePending(ctx, "")
	}()
}

// releaseLater leaves c pending: it is released before the next claim of
// its election and after each renewal.
func (e *Elector) releaseLater(s *session, c Claim) {
	e.mu.Lock()
	e.pending = append(e.pending, pendingRelease{sess: s, claim: c})
	e.mu.Unlock()
}

// releasePending releases the pending claims of election name ("" for all).
// It reports whether none of them is left.
func (e *Elector) releasePending(ctx context.Context, name string) bool {
	e.mu.Lock()
	var todo, keep []pendingRelease
	for _, p := range e.pending {
		if name == "" || p.claim.Name == name {
			todo = append(todo, p)
		} else {
			keep = append(keep, p)
		}
	}
	e.pending = keep
	e.mu.Unlock()

	var left []pendingRelease
	for _, p := range todo {
		if p.sess.isDead() {
			continue
		}
		if _, err := releaseClaim(ctx, p.sess.s, p.claim); err != nil {
			left = append(left, p)
		}
	}
	if len(left) == 0 {
		return true
	}
	e.mu.Lock()
	e.pending = append(e.pending, left...)
	e.mu.Unlock()
	return false
}

// redact returns err with the owner tokens of a *NotOwnerError cut to
// their TokenPrefix, so that no whole token leaves the process in an event,
// an error or a log line. The result still matches ErrNotOwner.
func redact(err error) error {
	var no *NotOwnerError
	if err == nil || !errors.As(err, &no) {
		return err
	}
	claims := make([]Claim, len(no.Claims))
	for i, c := range no.Claims {
		claims[i] = Claim{Name: c.Name, Token: TokenPrefix(c.Token), Fence: c.Fence}
	}
	return &NotOwnerError{Claims: claims}
}
