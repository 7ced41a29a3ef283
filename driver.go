package election

import (
	"context"
	"sync"
)

// The driver is the one goroutine that owns a candidate's lifecycle: it
// takes inputs from its mailbox one at a time, runs step, publishes the new
// state and carries out the effects. A claim or a release (each bounded by
// OpTimeout) is made by the driver itself and its answer is the next input
// it steps, before any other: no goroutine hop on the handoff path. Inputs
// posted meanwhile (Stop, Resign, watch events, timers) wait in the
// mailbox, in order. Nothing else changes the lifecycle.

// mailbox is an unbounded queue of inputs: anyone can post without
// blocking (timers, the renewal loop, the watch, handlers, API calls), and
// the driver takes them in order.
type mailbox struct {
	mu   sync.Mutex
	q    []input
	wake chan struct{}
}

func (m *mailbox) put(in input) {
	m.mu.Lock()
	m.q = append(m.q, in)
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *mailbox) take() input {
	for {
		m.mu.Lock()
		if len(m.q) > 0 {
			in := m.q[0]
			m.q[0] = input{}
			m.q = m.q[1:]
			m.mu.Unlock()
			return in
		}
		m.mu.Unlock()
		<-m.wake
	}
}

// post hands an input to the candidate's driver.
func (c *Candidate) post(in input) { c.inbox.put(in) }

// run is the driver loop. It ends when the candidate has stopped, after
// every goroutine it started has returned.
func (c *Candidate) run() {
	el := c.el
	s := lifecycle{state: StateIdle, id: c.cfg.ID, ttl: el.cfg.TTL}
	var (
		timer      Timer
		releaseErr error
		firstDone  bool
	)
	// The answers of store operations, fed back before the next input.
	var answers []input
	for s.state != StateStopped {
		var in input
		switch {
		case len(answers) > 0 && answers[0].kind == inClaimed && s.then != exitStop && c.stopping():
			// A Stop that came while the claim was on its way takes
			// effect first: a claim won then starts no handler.
			in = input{kind: inStop}
		case len(answers) > 0:
			in, answers = answers[0], answers[1:]
		default:
			in = c.inbox.take()
		}
		if in.kind == inReleased {
			releaseErr = in.err
		}
		next, effects := step(s, in)
		s = next
		c.publish(s)
		for _, e := range effects {
			switch e.kind {
			case effClaim:
				answers = append(answers, input{kind: inClaimed, claim: el.claim(c)})
			case effStartTerm:
				c.startTerm(e.term, e.queued)
			case effQueue:
				e.term.sess.addWaiter(e.term)
			case effCancel:
				e.term.end(e.err)
			case effUntrack:
				e.term.sess.untrack(e.term)
				e.term.invalidate()
			case effRelease:
				answers = append(answers, input{kind: inReleased, term: e.term, err: el.release(e.term.sess, e.term.claim)})
			case effAbandon:
				e.term.sess.untrack(e.term)
				el.releaseLater(e.term.sess, e.term.claim)
			case effArm:
				if timer != nil {
					timer.Stop()
				}
				d := e.d
				if d == 0 {
					d = el.backoff(el.cfg.RetryMin, el.cfg.RetryMax, e.failures)
				}
				gen := e.gen
				timer = el.clock.AfterFunc(d, func() { c.post(input{kind: inTimer, gen: gen}) })
			case effEmit:
				c.emit(e.ev)
			case effReply:
				for _, r := range e.replies {
					r <- e.err
				}
			case effStopped:
				if releaseErr != nil {
					c.mu.Lock()
					c.stopErr = releaseErr
					c.mu.Unlock()
				}
			}
		}
		// After the effects: a term won by the first claim has started,
		// so IsLeader is true when Start returns.
		if in.kind == inClaimed && !firstDone {
			firstDone = true
			close(c.first)
		}
	}
	if timer != nil {
		timer.Stop()
	}
	c.stopWatch()
	c.helpers.Wait()
	c.handlers.Wait()
	if !firstDone {
		close(c.first)
	}
	c.closeEvents()
	el.removeCandidate(c)
	close(c.done)
}

// stopping reports whether Stop (or Close) has been asked for.
func (c *Candidate) stopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopAsked
}

// startTerm starts t: its claim is renewed from now on and its handlers
// run, unless its deadline has already passed. queued says the store
// elected t from its line.
func (c *Candidate) startTerm(t *term, queued bool) {
	el := c.el
	since, deadline := t.info.Since, t.deadline
	if queued {
		// Elected from the line by the store: the claim is attached to
		// its session, so its deadline is the session's.
		t.sess.removeWaiter(t)
		since, deadline = el.clock.Now(), t.sess.deadline(el.cfg.DriftMargin)
	}
	t.sess.track(t)
	c.mu.Lock()
	hs := append([]Handler(nil), c.handlerList...)
	c.mu.Unlock()
	t.start(hs, since, deadline, queued)
}

// publish makes s the state the API reports, and wakes whoever waits for a
// change.
func (c *Candidate) publish(s lifecycle) {
	c.mu.Lock()
	changed := c.pub.state != s.state || c.pub.term != s.term || !sameLeader(c.pub.leader, s.leader)
	c.pub.state, c.pub.term = s.state, s.term
	if s.leader == nil {
		c.pub.leader = nil
	} else if !sameLeader(c.pub.leader, s.leader) {
		l := *s.leader
		c.pub.leader = &l
	}
	if changed {
		close(c.changed)
		c.changed = make(chan struct{})
	}
	c.mu.Unlock()
	if t := s.term; t != nil {
		switch s.state {
		case StateLeading, StateUncertain:
			if t.valid() {
				t.setStatus(s.state)
			}
		}
	}
}

// emit stamps ev and delivers it to the Events channel and OnEvent.
func (c *Candidate) emit(ev Event) {
	ev.Time = c.el.clock.Now()
	ev.Election, ev.Candidate = c.cfg.Name, c.cfg.ID
	c.eventsMu.Lock()
	if !c.eventsClosed {
		for sent := false; !sent; {
			select {
			case c.events <- ev:
				sent = true
			default:
				select {
				case <-c.events: // full: drop the oldest
				default:
				}
			}
		}
	}
	c.eventsMu.Unlock()
	c.el.events.push(ev)
}

func (c *Candidate) closeEvents() {
	c.eventsMu.Lock()
	defer c.eventsMu.Unlock()
	if !c.eventsClosed {
		c.eventsClosed = true
		close(c.events)
	}
}

// followElection runs the candidate's watch until stopWatch.
func (c *Candidate) followElection(ctx context.Context) {
	defer c.helpers.Done()
	c.el.follow(ctx, c.cfg.Name, func(ev WatchEvent) bool {
		c.post(input{kind: inWatch, watch: ev})
		return true
	})
}
