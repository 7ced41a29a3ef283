// Package clocktest provides a fake election.Clock whose time moves only
// when a test says so, so that deadline behaviour is checked exactly
// instead of with sleeps.
package clocktest

import (
	"sort"
	"sync"
	"time"

	"github.com/electionkit/election"
)

// Clock is a fake election.Clock. Its time starts at the time given to New
// and moves only through Advance, which runs the callbacks that come due,
// in time order, before it returns. It is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers map[uint64]*timer
}

type timer struct {
	c    *Clock
	id   uint64
	when time.Time
	f    func()
}

var _ election.Clock = (*Clock)(nil)

// New returns a fake clock reading start.
func New(start time.Time) *Clock {
	return &Clock{now: start, timers: map[uint64]*timer{}}
}

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f to run when the fake time reaches Now()+d. A
// non-positive d makes f due at once; it runs on the next Advance (of any
// length, including 0).
func (c *Clock) AfterFunc(d time.Duration, f func()) election.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &timer{c: c, id: c.seq, when: c.now.Add(d), f: f}
	c.timers[t.id] = t
	return t
}

// Stop cancels the timer; it reports whether it was still pending.
func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, ok := t.c.timers[t.id]
	delete(t.c.timers, t.id)
	return ok
}

// Advance moves the fake time forward by d, running every callback that
// comes due (including ones scheduled by those callbacks), each at its own
// time, in order. Callbacks run in the caller's goroutine.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		next := c.nextDueLocked(end)
		if next == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		delete(c.timers, next.id)
		if next.when.After(c.now) {
			c.now = next.when
		}
		c.mu.Unlock()
		next.f()
	}
}

// Pending returns how many callbacks are scheduled.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

func (c *Clock) nextDueLocked(end time.Time) *timer {
	due := make([]*timer, 0, len(c.timers))
	for _, t := range c.timers {
		if !t.when.After(end) {
			due = append(due, t)
		}
	}
	if len(due) == 0 {
		return nil
	}
	sort.Slice(due, func(i, j int) bool {
		if due[i].when.Equal(due[j].when) {
			return due[i].id < due[j].id
		}
		return due[i].when.Before(due[j].when)
	})
	return due[0]
}
