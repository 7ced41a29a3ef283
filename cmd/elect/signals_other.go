//go:build !unix

package main

import (
	"os"
	"syscall"
)

// forwarded are the signals elect catches (see signals_unix.go).
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM}
