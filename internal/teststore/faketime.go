package teststore

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// SteppedClock steps the wall clock of the servers started with its Env,
// and of no other process (this test keeps the real time), through
// libfaketime: the offset is read from a file at every call, so a Set
// takes effect at once. The monotonic clock is not faked. Pass Env to
// [PostgresOptions].Env; every postgres process inherits it.
type SteppedClock struct {
	path string
	lib  string
}

// NewSteppedClock finds Debian's libfaketime (package libfaketime, which
// scripts/test installs), failing the test if it is missing, and starts at
// offset zero.
func NewSteppedClock(t testing.TB) *SteppedClock {
	t.Helper()
	c := &SteppedClock{path: filepath.Join(serverDir(t, "election-faketime-"), "offset")}
	for _, pattern := range []string{
		"/usr/lib/*/faketime/libfaketime.so.1",
		"/usr/lib/faketime/libfaketime.so.1",
		"/usr/local/lib/faketime/libfaketime.so.1",
	} {
		if found, _ := filepath.Glob(pattern); len(found) > 0 {
			c.lib = found[0]
			break
		}
	}
	if c.lib == "" {
		t.Fatal("teststore: libfaketime.so.1 not found: scripts/test installs it (apt-get install libfaketime)")
	}
	c.Set(t, 0)
	return c
}

// Env is the environment that puts a server under the clock.
func (c *SteppedClock) Env() []string {
	return []string{
		"LD_PRELOAD=" + c.lib,
		"FAKETIME_TIMESTAMP_FILE=" + c.path,
		"FAKETIME_NO_CACHE=1",
		"DONT_FAKE_MONOTONIC=1",
	}
}

// Set moves the wall clock of the servers under c to the real time plus
// offset (whole seconds). The file is replaced by a rename, so a server
// never reads it half written.
func (c *SteppedClock) Set(t testing.TB, offset time.Duration) {
	t.Helper()
	if offset%time.Second != 0 {
		t.Fatalf("teststore: SteppedClock.Set(%v): whole seconds only", offset)
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%+d\n", int64(offset/time.Second))), 0o644); err != nil {
		t.Fatalf("teststore: %v", err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		t.Fatalf("teststore: %v", err)
	}
}
