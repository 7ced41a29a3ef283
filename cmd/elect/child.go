package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// holding is what a command's life is bound to: a term or a lease.
type holding interface {
	// Deadline is the local time by which the hold ends unless renewed.
	Deadline() time.Time
	// Lost is closed when the hold has ended (a term's context, a lease
	// found lost).
	Lost() <-chan struct{}
	// Renewed fires after a renewal that may have moved the deadline.
	Renewed() <-chan struct{}
}

// childSpec says how to run a command bound to a holding.
type childSpec struct {
	argv         []string
	env          []string // ELECTION_* added to elect's environment
	grace        time.Duration
	killMargin   time.Duration
	deadlineFile string
	log          *logger
}

// outcome is how a command's run ended.
type outcome struct {
	status    int  // exit code, or 128+signal
	lost      bool // killed because the hold ended or its deadline came near
	signalled bool // stopped because elect got SIGINT or SIGTERM
	ran       time.Duration
}

// runChild runs spec's command under a supervisor until it and every
// descendant are gone. It rewrites the deadline file after each renewal,
// forwards signals from sigs, and once the hold is lost, its deadline is
// within grace + kill margin, or a SIGINT or SIGTERM arrives, it sends
// SIGTERM (or that signal) to the whole tree, then SIGKILL at the earlier of
// grace later and kill margin before the deadline.
func runChild(h holding, spec childSpec, sigs <-chan os.Signal) (outcome, error) {
	if err := writeDeadline(spec.deadlineFile, h.Deadline()); err != nil {
		return outcome{}, err
	}
	started := time.Now()
	sup, err := startSupervisor(spec)
	if err != nil {
		return outcome{}, err
	}
	spec.log.infof("started %s (supervisor pid %d)", spec.argv[0], sup.pid)

	var (
		stopping  bool
		stopAt    time.Time
		killed    bool
		res       outcome
		lost      = h.Lost()
		timer     = time.NewTimer(time.Hour)
		deadline  = h.Deadline()
		lastWrite = deadline
	)
	defer timer.Stop()
	stop := func(sig syscall.Signal, why string, byLoss bool) {
		if stopping {
			return
		}
		stopping, stopAt = true, time.Now()
		res.lost, res.signalled = byLoss, !byLoss
		spec.log.infof("%s: sending %v to the command's processes (SIGKILL in at most %v)", why, sig,
			min(spec.grace, time.Until(deadline.Add(-spec.killMargin))).Round(time.Millisecond))
		sup.signal(sig)
	}
	for {
		deadline = h.Deadline()
		now := time.Now()
		killAt := deadline.Add(-spec.killMargin)
		if !stopping && !now.Before(killAt.Add(-spec.grace)) {
			stop(syscall.SIGTERM, fmt.Sprintf("no renewal; the deadline %s is near", deadline.Format(time.RFC3339Nano)), true)
		}
		if stopping {
			killAt = minTime(stopAt.Add(spec.grace), killAt)
			if !killed && !now.Before(killAt) {
				killed = true
				spec.log.infof("sending SIGKILL to the command's processes")
				sup.signal(syscall.SIGKILL)
			}
		}
		next := killAt.Add(-spec.grace)
		if stopping {
			next = killAt
		}
		if killed {
			next = now.Add(time.Hour)
		}
		timer.Reset(max(time.Until(next), 0))
		select {
		case <-sup.done:
			res.status = sup.status
			res.ran = time.Since(started)
			return res, nil
		case <-h.Renewed():
			if d := h.Deadline(); !d.Equal(lastWrite) {
				if err := writeDeadline(spec.deadlineFile, d); err != nil {
					spec.log.infof("%v", err)
				}
				lastWrite = d
			}
		case <-lost:
			lost = nil
			if d := h.Deadline(); !d.Equal(lastWrite) {
				_ = writeDeadline(spec.deadlineFile, d) // earlier, if the store no longer holds it
				lastWrite = d
			}
			stop(syscall.SIGTERM, "the term or lease ended", true)
		case s := <-sigs:
			sig := s.(syscall.Signal)
			if sig != syscall.SIGINT && sig != syscall.SIGTERM {
				sup.signal(sig) // passed on; the command goes on
				continue
			}
			if stopping {
				sup.signal(sig)
			}
			stop(sig, fmt.Sprintf("got %v", sig), false)
		case <-timer.C:
		}
	}
}

// exitStatus is a process's exit code, or 128+signal if a signal ended it.
func exitStatus(ps *os.ProcessState, _ error) int {
	if ps == nil {
		return exitFailed
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// writeDeadline replaces the deadline file atomically (write, then rename)
// with d in RFC 3339 with nanoseconds.
func writeDeadline(path string, d time.Time) error {
	tmp := filepath.Join(filepath.Dir(path), ".deadline.tmp")
	if err := os.WriteFile(tmp, []byte(d.UTC().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write the deadline file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write the deadline file: %w", err)
	}
	return nil
}

// gracePlan is the timing a holding leaves for stopping a command.
type gracePlan struct {
	ttl, drift, interval, timeout time.Duration
	jitter                        float64
}

// killMargin is how long before the deadline SIGKILL is sent: half the
// drift margin, for timers that fire late on a loaded machine (the store
// expires the claim a whole drift margin after the deadline).
func (p gracePlan) killMargin() time.Duration { return p.drift / 2 }

// slack is how far the deadline stays ahead of a healthy but slow renewal:
// TTL − DriftMargin − RenewInterval×(1+RenewJitter) − RenewTimeout.
func (p gracePlan) slack() time.Duration {
	return p.ttl - p.drift - time.Duration(float64(p.interval)*(1+p.jitter)) - p.timeout
}

// defaultGrace is min(TTL/4, 10s), capped to what the slack allows.
func (p gracePlan) defaultGrace() time.Duration {
	return min(p.ttl/4, 10*time.Second, p.slack()-p.killMargin())
}

// check reports a grace that leaves no room: SIGTERM would come before a
// renewal that is merely slow, or SIGKILL after the deadline.
func (p gracePlan) check(grace time.Duration) error {
	if grace <= 0 {
		return fmt.Errorf("--grace %v is not positive", grace)
	}
	if grace+p.killMargin() > p.slack() {
		return fmt.Errorf("--grace %v is too long for TTL %v: grace + kill margin (%v) must be at most "+
			"TTL − DriftMargin − RenewInterval×(1+RenewJitter) − RenewTimeout = %v − %v − %v×%.2f − %v = %v, "+
			"so that SIGKILL comes before the deadline and a slow renewal does not stop the command; "+
			"use --grace %v or less, or a longer --ttl",
			grace, p.ttl, p.killMargin(), p.ttl, p.drift, p.interval, 1+p.jitter, p.timeout, p.slack(),
			max(p.slack()-p.killMargin(), 0))
	}
	return nil
}
