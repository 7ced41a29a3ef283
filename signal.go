package election

import "sync"

// latch is a channel that is closed once, made only when someone waits
// on it: most candidates are never waited on, and a channel costs about
// 100 bytes for each of 100,000 elections.
type latch struct {
	mu    sync.Mutex
	ch    chan struct{}
	fired bool
}

// wait returns a channel that is closed once fire has been called.
func (l *latch) wait() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fired {
		return closedChan
	}
	if l.ch == nil {
		l.ch = make(chan struct{})
	}
	return l.ch
}

// closedChan is what a fired latch hands out.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// fire closes the latch; later calls do nothing.
func (l *latch) fire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fired {
		return
	}
	l.fired = true
	if l.ch != nil {
		close(l.ch)
		l.ch = nil
	}
}

// changes hands out a channel that is closed at the next change, made
// only when asked for. Its owner's lock guards it.
type changes struct{ ch chan struct{} }

// next returns a channel closed at the next call of fire.
func (c *changes) next() <-chan struct{} {
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

// fire closes the channel handed out since the last change, if any.
func (c *changes) fire() {
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}
