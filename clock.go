package election

import "time"

// Clock is the time source of the core. Every deadline that decides
// behaviour (renewal, step-down, retry, expiry re-reads) is measured with it,
// so tests can inject a fake clock and be exact instead of slow.
//
// Implementations must be monotonic: Now must never go backwards and
// durations between two Now values must not be affected by wall-clock
// adjustments. The system clock satisfies this through Go's monotonic
// reading.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has elapsed, unless the
	// returned Timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending call made by [Clock.AfterFunc].
type Timer interface {
	// Stop prevents the call if it has not run yet and reports whether it
	// did so.
	Stop() bool
}

// SystemClock returns the Clock backed by package time.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
