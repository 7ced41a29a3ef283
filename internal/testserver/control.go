package testserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// signal sends sig to the current run's process group.
func (p *Process) signal(sig syscall.Signal) error {
	r, err := p.running()
	if err != nil {
		return err
	}
	if err := syscall.Kill(-r.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("testserver: %s: %v: %w", p.cfg.Name, sig, err)
	}
	return nil
}

// Pause freezes the process group with SIGSTOP and returns once every
// thread of the server process has stopped: from then on the server neither
// answers nor runs timers until [Process.Resume], though the kernel still
// accepts TCP connections into its listen backlog. It fails if the server is
// stopped or has exited, or if ctx ends before the threads have stopped (the
// signal is sent all the same).
func (p *Process) Pause(ctx context.Context) error {
	r, err := p.running()
	if err != nil {
		return err
	}
	if err := p.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	// kill(2) returns before the threads stop; a test that pauses and then
	// talks to the server must not be answered.
	for {
		stopped, err := allThreadsStopped(r.cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("testserver: pause %s: %w", p.cfg.Name, err)
		}
		if stopped {
			return nil
		}
		select {
		case <-r.done:
			return fmt.Errorf("testserver: pause %s: exited: %v", p.cfg.Name, r.err)
		case <-ctx.Done():
			return fmt.Errorf("testserver: pause %s: %w", p.cfg.Name, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// allThreadsStopped reports whether every thread of pid is in the stopped
// state ("T", or "t" under a tracer), reading /proc.
func allThreadsStopped(pid int) (bool, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false, err
	}
	for _, task := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread exited
			}
			return false, err
		}
		// The state follows the parenthesized command name, which may
		// itself hold parentheses.
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) {
			return false, fmt.Errorf("unexpected /proc stat format: %q", s)
		}
		if state := s[i+2]; state != 'T' && state != 't' {
			return false, nil
		}
	}
	return true, nil
}

// Resume continues a paused process group with SIGCONT. Resuming a server
// that is not paused does nothing. It fails if the server is stopped or has
// exited. ctx is not used: sending a signal does not block.
func (p *Process) Resume(ctx context.Context) error { return p.signal(syscall.SIGCONT) }
