//go:build unix

package main

import (
	"os"
	"syscall"
)

// forwarded are the signals elect catches: SIGINT and SIGTERM stop the
// command (forwarded, then elect exits with its status); the others are
// passed on to a running command and elect goes on.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2}
