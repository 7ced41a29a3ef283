package election

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

var errResigned = errors.New("election: stepped down (Resign or Stop)")

// run is the candidate's loop: the only goroutine that claims, steps down
// and releases. first is closed after the first claim attempt.
func (c *Candidate) run(first chan struct{}) {
	defer close(c.done)
	defer c.closeEvents()
	life := c.life
	cp := &campaign{c: c, el: c.el, retry: newAlarm(c.el.clock), hold: newAlarm(c.el.clock)}
	defer cp.retry.stop()
	defer cp.hold.stop()

	watchCtx, cancelWatch := context.WithCancel(life)
	watchCh := make(chan WatchEvent)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.el.follow(watchCtx, c.cfg.Name, func(ev WatchEvent) bool {
			select {
			case watchCh <- ev:
				return true
			case <-watchCtx.Done():
				return false
			}
		})
	}()
	defer func() {
		cancelWatch()
		wg.Wait()
	}()

	cp.claim(life)
	close(first)
	for {
		select {
		case <-life.Done():
			cp.shutdown()
			return
		case ev := <-watchCh:
			cp.onWatch(life, ev)
		case <-c.wake:
			cp.onWake(life)
		case <-cp.retry.C:
			cp.claim(life)
		case <-cp.hold.C:
			cp.holding = false
			cp.claim(life)
		case reply := <-c.resignCh:
			reply <- cp.resign()
		}
	}
}

// campaign is the state of a candidate's loop, owned by that goroutine.
type campaign struct {
	c        *Candidate
	el       *Elector
	retry    *alarm // next claim attempt
	hold     *alarm // end of the hold-off after Resign
	holding  bool
	failures int
	// queued is the claim waiting in the store's line (see [Queuer]),
	// nil when the candidate is not in line.
	queued *queuedClaim
}

// queuedClaim is a claim waiting in line on a session.
type queuedClaim struct {
	sess  *session
	claim Claim
}

func (cp *campaign) opTimeout() time.Duration { return cp.el.cfg.RenewInterval }

// claim makes one claim attempt if the candidate is a follower.
func (cp *campaign) claim(life context.Context) {
	c, el := cp.c, cp.el
	if c.currentTerm() != nil || cp.holding || life.Err() != nil {
		return
	}
	if q := cp.queued; q != nil {
		if !q.sess.isDead() {
			return // in line: the watch shows when the claim holds
		}
		cp.takeQueued() // the store dropped it with the session
	}
	ctx, cancel := context.WithTimeout(life, cp.opTimeout())
	defer cancel()
	if !el.releaseOrphans(ctx, c.cfg.Name) {
		cp.fail(fmt.Errorf("election: release earlier claim of %q: %w", c.cfg.Name, ErrUnavailable))
		return
	}
	sess, err := el.currentSession(ctx)
	if err != nil {
		cp.fail(err)
		return
	}
	token := newToken()
	anchor := sess.deadline(el.cfg.DriftMargin) // read before the claim is sent
	sent := el.clock.Now()
	req := ClaimRequest{Name: c.cfg.Name, Token: token, ID: c.cfg.ID, Metadata: c.cfg.Metadata}
	var (
		cl     Claim
		holder *Leader
	)
	if q, ok := sess.s.(Queuer); ok {
		cl, holder, err = q.Enqueue(ctx, req)
	} else {
		cl, err = sess.s.Claim(ctx, req)
	}
	latency := el.clock.Now().Sub(sent)

	var taken *TakenError
	switch {
	case err == nil && holder != nil:
		// In line behind holder: the claim holds once every claim ahead
		// of it has ended, and the watch shows it (onWatch adopts it).
		cp.failures = 0
		cp.queued = &queuedClaim{sess: sess, claim: cl}
		sess.addWaiter(c)
		ev := c.event(EventClaimTaken)
		ev.Latency, ev.Leader, ev.Queued = latency, holder, true
		cp.seeLeader(holder)
		c.deliver(ev)
		cp.retry.stop()
	case err == nil:
		cp.failures = 0
		cp.elected(sess, cl, sent, anchor, latency, false)
	case errors.As(err, &taken):
		cp.failures = 0
		holder := taken.Holder
		ev := c.event(EventClaimTaken)
		ev.Latency = latency
		if holder.ID != "" || holder.Fence != 0 {
			ev.Leader = &holder
			cp.seeLeader(&holder)
		} // else: the store refuses claims for now; no one leads
		c.deliver(ev)
		if taken.ExpiresIn > 0 {
			// The store does not push expiry: claim when the holder's
			// TTL runs out.
			cp.retry.set(taken.ExpiresIn + time.Millisecond)
		} else {
			cp.retry.stop() // the watch reports the release or expiry
		}
	case errors.Is(err, ErrSessionExpired):
		el.expire(sess, err)
		cp.fail(err)
	default:
		// The claim may have been applied without our hearing of it.
		el.addOrphan(sess, Claim{Name: c.cfg.Name, Token: token})
		ev := c.event(EventClaimFailed)
		ev.Err, ev.Latency = err, latency
		cp.failures++
		c.deliver(ev)
		cp.retry.set(backoff(el.cfg.RetryMin, el.cfg.RetryMax, cp.failures))
	}
}

func (cp *campaign) fail(err error) {
	ev := cp.c.event(EventClaimFailed)
	ev.Err = err
	cp.failures++
	cp.c.deliver(ev)
	cp.retry.set(backoff(cp.el.cfg.RetryMin, cp.el.cfg.RetryMax, cp.failures))
}

// elected starts the term of claim cl; queued is set for a claim that
// waited in line and was elected by the store, with no claim of its own.
func (cp *campaign) elected(sess *session, cl Claim, sent, deadline time.Time, latency time.Duration, queued bool) {
	c, el := cp.c, cp.el
	cp.retry.stop()
	t := newTerm(c, sess, cl, sent, deadline)
	sess.add(t)
	if sess.isDead() {
		t.end(LossSessionExpired, ErrSessionExpired)
	}
	self := &Leader{Election: cl.Name, ID: c.cfg.ID, Metadata: c.cfg.Metadata, Fence: cl.Fence}
	c.mu.Lock()
	c.cur = t
	c.leader = self
	handlers := append([]Handler(nil), c.handlers...)
	c.mu.Unlock()

	ev := c.event(EventClaimed)
	ev.Fence, ev.TokenPrefix, ev.Latency, ev.TTL = cl.Fence, TokenPrefix(cl.Token), latency, sess.ttl
	ev.Leader, ev.Queued = self, queued
	c.deliver(ev)
	for _, h := range handlers {
		t.runHandler(h)
	}
	if !el.clock.Now().Before(deadline) {
		t.end(LossDeadline, errDeadline)
	}
}

// onWake handles a term that ended without a release.
func (cp *campaign) onWake(life context.Context) {
	c := cp.c
	t := c.currentTerm()
	if t == nil {
		if q := cp.queued; q != nil && q.sess.isDead() {
			cp.claim(life) // the line was dropped with the session: join anew
		}
		return
	}
	t.mu.Lock()
	ended, reason, err := t.ended, t.reason, t.err
	t.mu.Unlock()
	if !ended || reason == "" {
		return
	}
	c.mu.Lock()
	c.cur = nil
	c.mu.Unlock()
	// Reported at once: the handlers' context is already cancelled.
	ev := c.event(EventLost)
	ev.Reason, ev.Err, ev.Fence, ev.TokenPrefix = reason, err, t.claim.Fence, t.info.TokenPrefix
	c.deliver(ev)
	// Leader-only work must be over before this candidate campaigns again.
	t.waitWork(life)
	t.sess.remove(t)
	// Whatever the reason, the store may still hold the claim: renewals
	// failed but the session lives on, or a backend reported a claim lost
	// that it still keeps on the session. Release it by token when the
	// store answers; if it is gone, the release finds no owner and stops.
	cp.el.addOrphan(t.sess, t.claim)
	cp.retry.set(0)
}

// stepDown ends the current term for a resign or stop: it cancels the
// leader context, waits for leader-only work, then releases by token.
func (cp *campaign) stepDown(waitCtx context.Context) error {
	c, el := cp.c, cp.el
	t := c.currentTerm()
	if t == nil {
		return nil
	}
	if !t.end("", errResigned) {
		return nil // lost meanwhile; onWake reports it
	}
	if !t.waitWork(waitCtx) {
		// Handlers ignore their context: keep the claim (the session keeps
		// renewing it) until they return, then release.
		go func() {
			t.work.Wait()
			err := cp.release(t)
			ev := c.event(EventReleased)
			ev.Fence, ev.TokenPrefix, ev.Err = t.claim.Fence, t.info.TokenPrefix, err
			c.deliver(ev) // reaches OnEvent even after the candidate stopped

		}()
		c.mu.Lock()
		c.cur = nil
		c.mu.Unlock()
		return fmt.Errorf("election: %q in %q: handlers still running, release deferred: %w", c.cfg.ID, c.cfg.Name, waitCtx.Err())
	}
	c.mu.Lock()
	c.cur = nil
	c.mu.Unlock()
	err := cp.release(t)
	ev := c.event(EventReleased)
	ev.Fence, ev.TokenPrefix, ev.Err = t.claim.Fence, t.info.TokenPrefix, err
	c.deliver(ev)
	_ = el
	return err
}

// release releases t's claim; on an unknown outcome the claim is handed to
// the elector, which retries until the store answers.
func (cp *campaign) release(t *term) error {
	el := cp.el
	ctx, cancel := context.WithTimeout(context.Background(), cp.opTimeout())
	defer cancel()
	err := t.sess.s.Release(ctx, t.claim)
	t.sess.remove(t)
	switch {
	case err == nil, errors.Is(err, ErrNotOwner):
		return nil
	default:
		el.addOrphan(t.sess, t.claim)
		return fmt.Errorf("election: release %q: %w", t.claim.Name, err)
	}
}

func (cp *campaign) resign() error {
	c := cp.c
	if !c.IsLeader() {
		return fmt.Errorf("%w: resign %q in %q", ErrNotLeader, c.cfg.ID, c.cfg.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cp.el.cfg.TTL)
	defer cancel()
	err := cp.stepDown(ctx)
	cp.holding = true
	cp.hold.set(cp.el.cfg.TTL)
	cp.retry.stop()
	return err
}

func (cp *campaign) shutdown() {
	c := cp.c
	c.mu.Lock()
	ctx := c.stopCtx
	c.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	err := cp.stepDown(ctx)
	cp.leaveLine()
	if ctx.Err() != nil {
		// The Stop whose context ended has returned that error already;
		// the release completes in the background.
		err = nil
	}
	c.mu.Lock()
	c.stopErr = err
	c.mu.Unlock()
}

// onWatch reacts to a change of the election seen by the watch.
func (cp *campaign) onWatch(life context.Context, ev WatchEvent) {
	c := cp.c
	if ev.Err != nil {
		e := c.event(EventWatchFailed)
		e.Err = ev.Err
		c.deliver(e)
		if c.currentTerm() == nil && !cp.holding {
			// Blind until the watch is back: fall back to claims with backoff.
			cp.failures++
			cp.retry.set(backoff(cp.el.cfg.RetryMin, cp.el.cfg.RetryMax, cp.failures))
		}
		return
	}
	if t := c.currentTerm(); t != nil {
		cp.checkTerm(t, ev.Leader)
		return
	}
	if q := cp.queued; q != nil {
		switch {
		case ev.Leader != nil && ev.Leader.Fence == q.claim.Fence && ev.Leader.ID == c.cfg.ID:
			cp.adopt(q, ev.Leader)
			return
		case ev.Leader == nil || ev.Leader.Fence > q.claim.Fence:
			// The claim is out of line: a claim behind it leads, or no
			// one does (the event may also predate the claim; leaving
			// and joining again is then merely redundant).
			cp.dropQueued()
			cp.seeLeader(ev.Leader)
			cp.claim(life) // join the line again
			return
		}
	}
	cp.seeLeader(ev.Leader)
	switch {
	case ev.Leader == nil:
		if !cp.holding {
			cp.claim(life)
		}
	case ev.Leader.ID != c.cfg.ID && cp.holding:
		// Another candidate took over after our Resign: campaign again,
		// which on a store with a line means joining it now, so that
		// this candidate is in line for the next handoff.
		cp.holding = false
		cp.hold.stop()
		cp.claim(life)
		return
	}
	if ev.Leader != nil && ev.ExpiresIn > 0 && !cp.holding {
		cp.retry.set(ev.ExpiresIn + time.Millisecond)
	}
}

// adopt makes the queued claim q, which the watch shows holding the
// election, the candidate's term. The claim is attached to q's session, so
// the store keeps it at least as long as the session's last renewal
// covers: the term's deadline is the session's.
func (cp *campaign) adopt(q *queuedClaim, l *Leader) {
	cp.takeQueued()
	cp.elected(q.sess, q.claim, cp.el.clock.Now(), q.sess.deadline(cp.el.cfg.DriftMargin), 0, true)
	if t := cp.c.currentTerm(); t != nil {
		cp.checkTerm(t, l)
	}
}

// dropQueued forgets the queued claim and hands it to the elector, which
// takes it out of line (if it is still there) by token.
func (cp *campaign) dropQueued() {
	if q := cp.takeQueued(); q != nil {
		cp.el.addOrphan(q.sess, q.claim)
	}
}

// takeQueued forgets the queued claim, if any, and returns it; its session
// no longer wakes the candidate on expiry.
func (cp *campaign) takeQueued() *queuedClaim {
	q := cp.queued
	if q != nil {
		cp.queued = nil
		q.sess.removeWaiter(cp.c)
	}
	return q
}

// leaveLine takes the queued claim, if any, out of line, so that it never
// holds the election for a candidate that stopped.
func (cp *campaign) leaveLine() {
	q := cp.takeQueued()
	if q == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cp.opTimeout())
	defer cancel()
	if err := q.sess.s.Release(ctx, q.claim); err != nil && !errors.Is(err, ErrNotOwner) {
		cp.el.addOrphan(q.sess, q.claim)
	}
}

// checkTerm ends t if the store shows a newer term or, once the watch has
// shown t itself, anything else.
func (cp *campaign) checkTerm(t *term, l *Leader) {
	t.mu.Lock()
	own := l != nil && l.Fence == t.claim.Fence && l.ID == cp.c.cfg.ID
	if own {
		t.seenOwn = true
	}
	seen := t.seenOwn
	t.mu.Unlock()
	switch {
	case own:
	case l != nil && l.Fence > t.claim.Fence:
		t.end(LossSuperseded, fmt.Errorf("%w: %q holds a newer term (fence %d)", ErrLost, l.ID, l.Fence))
	case seen && l == nil:
		t.end(LossNotOwner, fmt.Errorf("%w: the store no longer holds the claim", ErrLost))
	case seen:
		t.end(LossSuperseded, fmt.Errorf("%w: %q holds the election (fence %d)", ErrLost, l.ID, l.Fence))
	}
}

// seeLeader records the leader seen and reports a change.
func (cp *campaign) seeLeader(l *Leader) {
	c := cp.c
	c.mu.Lock()
	changed := !sameLeader(c.leader, l)
	if changed {
		if l == nil {
			c.leader = nil
		} else {
			cp := *l
			c.leader = &cp
		}
	}
	c.mu.Unlock()
	if changed {
		ev := c.event(EventLeaderChanged)
		ev.Leader = l
		c.deliver(ev)
	}
}

func sameLeader(a, b *Leader) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.ID == b.ID && a.Fence == b.Fence && a.Election == b.Election
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// DefaultID returns a new candidate ID made of the host name, the process
// ID and a random suffix, the default for [CandidateConfig.ID]. Call it
// once to give every candidate of a process the same ID.
func DefaultID() string { return defaultID() }

func defaultID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "candidate"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), newToken()[:6])
}
