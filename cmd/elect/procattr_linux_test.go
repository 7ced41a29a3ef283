//go:build linux

package main

import "syscall"

// testProcAttr makes an elect started by a test get SIGTERM (and so stop
// its command and resign) if the test binary dies without its cleanups,
// killed by a timeout say. The test binary never ends a thread (no
// goroutine exits locked to one), so the signal comes only then.
func testProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
