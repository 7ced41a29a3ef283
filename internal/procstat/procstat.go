// Package procstat measures this process for the scale probes of the
// backends and the scale benchmark in bench/: one definition of "CPU used"
// and "memory held", so that their figures compare.
package procstat

import (
	"runtime"
	"syscall"
	"time"
)

// CPU returns the user plus system CPU time of the process so far
// (getrusage RUSAGE_SELF), or 0 if the system does not say.
func CPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// HeapStack returns HeapInuse + StackInuse after two full collections
// (the second frees what the first's finalizers released).
func HeapStack() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}
