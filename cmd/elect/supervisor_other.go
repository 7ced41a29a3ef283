//go:build !linux

package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
)

// errUnsupported: elect run and elect lease need Linux's child subreaper
// and parent-death signal to guarantee that a command does not outlive
// elect.
var errUnsupported = errors.New("running a command is supported on Linux only (it needs PR_SET_CHILD_SUBREAPER and a parent-death signal); " +
	runtime.GOOS + " is not supported")

type supervisor struct {
	pid    int
	done   chan struct{}
	status int
}

func becomeSubreaper() error { return errUnsupported }

func startSupervisor(childSpec) (*supervisor, error) { return nil, errUnsupported }

func (s *supervisor) signal(syscall.Signal) {}

func superviseMain([]string) int {
	fmt.Fprintf(os.Stderr, "elect: %v\n", errUnsupported)
	return exitFailed
}
