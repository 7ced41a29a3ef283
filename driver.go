package election

import (
	"sync"
)

// The driver owns a candidate's lifecycle: it takes inputs from the
// candidate's mailbox one at a time, runs step, publishes the new state and
// carries out the effects. Nothing else changes the lifecycle.
//
// The driver is not a goroutine that lives as long as the candidate: a
// process holding thousands of idle elections would pay a stack for each.
// It runs in activations. Posting an input to an idle mailbox starts one: a
// goroutine that steps inputs until the mailbox is empty, marks it idle and
// ends. At most one activation runs at a time, and the mailbox's lock
// orders one activation's end before the next one's start, so the
// lifecycle has exactly one owner at any moment, as with one goroutine. An
// idle candidate (waiting for a timer, a watch event or a call) has no
// goroutine of its own. (A pool of worker goroutines that keep their grown
// stacks was tried and dropped: the garbage collector shrank the idle
// workers' stacks and they grew again, so Close of 20,000 candidates on the
// memory backend spent more, not less, time copying stacks.)
//
// A claim or a release (each bounded by OpTimeout) is made by the
// activation itself and its answer is the next input it steps, before any
// other: no goroutine hop on the handoff path. Inputs posted meanwhile
// (Stop, Resign, watch events, timers) wait in the mailbox, in order.

// mailbox is an unbounded queue of inputs: anyone can post without
// blocking (timers, the renewal loop, the watch, handlers, API calls).
type mailbox struct {
	mu     sync.Mutex
	q      []input
	active bool   // an activation is running
	closed bool   // the candidate has stopped: inputs are dropped
	drain  func() // an activation, started by put on an idle mailbox
}

func (m *mailbox) put(in input) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.q = append(m.q, in)
	start := !m.active
	m.active = true
	m.mu.Unlock()
	if start {
		go m.drain()
	}
}

// next takes the oldest input. When there is none it marks the mailbox
// idle, so that the next put starts a new activation, and reports false:
// the calling activation must then end without touching the lifecycle.
func (m *mailbox) next() (input, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.q) == 0 {
		m.q = nil // an idle candidate keeps no queue
		m.active = false
		return input{}, false
	}
	in := m.q[0]
	m.q[0] = input{}
	m.q = m.q[1:]
	return in, true
}

// close drops every input from now on.
func (m *mailbox) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed, m.q = true, nil
}

// post hands an input to the candidate's driver.
func (c *Candidate) post(in input) { c.inbox.put(in) }

// driver is the state an activation owns: the lifecycle and what the
// driver keeps between inputs.
type driver struct {
	s          lifecycle
	timer      Timer
	releaseErr error
	firstDone  bool
	// fenceSeen is the highest fence of the election seen so far: of the
	// candidate's own claims, and of the holders its watch showed (not
	// unknown writers'). A claim answered with a fence at or below it
	// found a store whose data went back (see Elector.claim).
	fenceSeen uint64
	// answers holds the answers of store operations, stepped before the
	// next mailbox input and always within the activation that made them.
	answers []input
}

// activate is one activation of the driver. The last one, which steps the
// candidate into StateStopped, waits for every goroutine the candidate
// started and then closes Done.
func (c *Candidate) activate() {
	d := &c.drv
	buf := make([]effect, 0, 8) // reused by each step of this activation
	for {
		var in input
		switch {
		case d.s.then != exitStop && c.stopping() &&
			((len(d.answers) > 0 && d.answers[0].kind == inClaimed) || (len(d.answers) == 0 && d.s.state == StateQueued)):
			// A Stop asked for takes effect before what could start a
			// term: a claim won while it was on its way, or a promotion
			// from the line posted just before the Stop. Either way no
			// handler starts after Stop was called. (The Stop's own input
			// comes later and changes nothing.)
			in = input{kind: inStop}
		case len(d.answers) > 0:
			in, d.answers = d.answers[0], d.answers[1:]
		default:
			var ok bool
			if in, ok = c.inbox.next(); !ok {
				return
			}
		}
		buf = c.handle(d, in, buf)
		if d.s.state == StateStopped {
			c.finish(d)
			return
		}
	}
}

// handle steps one input and carries out its effects. It returns buf,
// cleared, for the next step.
func (c *Candidate) handle(d *driver, in input, buf []effect) []effect {
	el := c.el
	switch {
	case in.kind == inReleased:
		d.releaseErr = in.err
	case in.kind == inWatch && in.watch.Leader != nil && in.watch.Leader.ID != "":
		d.fenceSeen = max(d.fenceSeen, in.watch.Leader.Fence)
	case in.kind == inClaimed && in.claim.err == nil && in.claim.term != nil:
		d.fenceSeen = max(d.fenceSeen, in.claim.term.claim.Fence)
	}
	next, effects := stepInto(d.s, in, buf)
	d.s = next
	c.publish(d.s)
	for _, e := range effects {
		switch e.kind {
		case effClaim:
			// A new campaign: the failure of an earlier term's release
			// is not what a later Stop reports.
			d.releaseErr = nil
			d.answers = append(d.answers, input{kind: inClaimed, claim: el.claim(c, d.fenceSeen)})
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
			d.answers = append(d.answers, input{kind: inReleased, term: e.term, err: el.release(e.term.sess, e.term.claim)})
		case effAbandon:
			e.term.sess.untrack(e.term)
			el.releaseLater(e.term.sess, e.term.claim)
		case effArm:
			if d.timer != nil {
				d.timer.Stop()
			}
			dur := e.d
			if dur == 0 {
				dur = el.backoff(el.cfg.RetryMin, el.cfg.RetryMax, e.failures)
			}
			gen := e.gen
			d.timer = el.clock.AfterFunc(dur, func() { c.post(input{kind: inTimer, gen: gen}) })
		case effEmit:
			c.emit(e.ev)
		case effReply:
			for _, r := range e.replies {
				r <- e.err
			}
		case effStopped:
			if d.releaseErr != nil {
				c.mu.Lock()
				c.stopErr = d.releaseErr
				c.mu.Unlock()
			}
		}
	}
	// After the effects: a term won by the first claim has started, so
	// IsLeader is true when Start returns.
	if in.kind == inClaimed && !d.firstDone {
		d.firstDone = true
		c.first.fire()
	}
	clear(effects) // drop the references to terms and events
	return effects[:0]
}

// finish ends a stopped candidate once every goroutine it started has
// returned.
func (c *Candidate) finish(d *driver) {
	c.inbox.close()
	if d.timer != nil {
		d.timer.Stop()
	}
	c.watch.stop()
	c.handlers.Wait()
	if !d.firstDone {
		c.first.fire()
	}
	c.closeEvents()
	c.el.removeCandidate(c)
	c.done.fire()
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
	t.mu.Lock()
	since, deadline := t.info.Since, t.deadline
	t.mu.Unlock()
	if queued {
		// Elected from the line by the store: the claim is attached to
		// its session, so its deadline is the session's.
		t.sess.removeWaiter(t)
		since, deadline = el.clock.Now(), t.sess.deadline()
	}
	t.sess.track(t)
	// The copy of the handler list and the term's start are one step
	// under c.mu, as AddHandlers adds under it: a handler added meanwhile
	// is either in the copy or started by AddHandlers on the started term.
	c.mu.Lock()
	defer c.mu.Unlock()
	t.start(append([]Handler(nil), c.handlerList...), since, deadline, queued)
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
		c.changed.fire()
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
	if !c.eventsClosed && c.events != nil {
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
		if c.events != nil {
			close(c.events)
		}
	}
}

// holds reports whether l is the candidate's current term.
func (c *Candidate) holds(l *Leader) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pub.term != nil && c.pub.term.claim.Fence == l.Fence
}
