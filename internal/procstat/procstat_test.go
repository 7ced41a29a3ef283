package procstat

import (
	"runtime"
	"testing"
)

// CPU moves when the process works, and HeapStack sees memory that is
// held and stops seeing it once it is dropped.
func TestCPUAndHeapStack(t *testing.T) {
	before := CPU()
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x += i % 7
	}
	if CPU() <= before {
		t.Fatalf("CPU did not move after a busy loop (%d)", x)
	}
	gc0, _ := RuntimeCPU()
	base := HeapStack() // two GCs
	if gc, scavenge := RuntimeCPU(); gc <= gc0 || scavenge < 0 {
		t.Fatalf("RuntimeCPU: GC %v after two GCs (%v before), scavenger %v", gc, gc0, scavenge)
	}
	held := make([]byte, 64<<20)
	for i := range held {
		held[i] = 1
	}
	with := HeapStack()
	runtime.KeepAlive(held)
	if with < base+60<<20 {
		t.Fatalf("HeapStack %d with 64 MiB held, %d before", with, base)
	}
}
