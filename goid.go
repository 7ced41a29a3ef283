package election

import "runtime"

// goid returns the ID of the calling goroutine. Stop, Resign and Close use
// it to tell whether they are called from a handler that the step-down
// would wait for (it would wait for ever), and Close whether it is called
// from an OnEvent callback. Go does not export goroutine IDs; the first
// line of the goroutine's own stack trace, "goroutine 123 [running]:",
// carries it, at the cost of about a microsecond.
func goid() uint64 {
	var buf [40]byte
	n := runtime.Stack(buf[:], false)
	const prefix = "goroutine "
	var id uint64
	for _, b := range buf[len(prefix):n] {
		if b < '0' || b > '9' {
			break
		}
		id = id*10 + uint64(b-'0')
	}
	return id
}
