// Package procstat measures this process for the scale probes of the
// backends and the scale benchmark in bench/: one definition of "CPU used"
// and "memory held", so that their figures compare.
package procstat

import (
	"runtime"
	"runtime/metrics"
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

// RuntimeCPU returns the runtime's own estimates of the CPU time its
// garbage collector and its scavenger (which returns freed memory to the
// operating system) have used so far, from runtime/metrics. They are a
// part of [CPU], and show how much of an idle process's CPU is the Go
// runtime's rather than the program's: after a burst of allocation (say
// 100,000 elections started) the scavenger returns the freed memory at up
// to about 1% of a core, for a while.
func RuntimeCPU() (gc, scavenge time.Duration) {
	samples := []metrics.Sample{
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/cpu/classes/scavenge/total:cpu-seconds"},
	}
	metrics.Read(samples)
	seconds := func(s metrics.Sample) time.Duration {
		if s.Value.Kind() != metrics.KindFloat64 {
			return 0
		}
		return time.Duration(s.Value.Float64() * float64(time.Second))
	}
	return seconds(samples[0]), seconds(samples[1])
}
