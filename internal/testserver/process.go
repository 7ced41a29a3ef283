package testserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/electionkit/election/conformance"
)

var _ conformance.Store = (*Process)(nil)

// DefaultReadyTimeout is the ReadyTimeout used when [Config] leaves it zero.
// It is generous because the tests share two cores with -race builds.
const DefaultReadyTimeout = 60 * time.Second

// readyPollInterval is the pause between two failed Ready checks.
const readyPollInterval = 100 * time.Millisecond

// readyAttemptTimeout bounds one Ready call, so that a check hanging on a
// half-started server is retried instead of eating the whole ReadyTimeout.
const readyAttemptTimeout = 5 * time.Second

// logTailLines is how much of the log a failure message quotes.
const logTailLines = 40

// Config describes a server process for [Start].
type Config struct {
	// Name labels the process in messages and names its log file. Default:
	// the base name of Binary.
	Name string
	// Binary is the absolute path of the executable, usually from [Binary].
	// Required.
	Binary string
	// Args are the command-line arguments, without the program name. They
	// should make the server listen on 127.0.0.1 only.
	Args []string
	// Dir is the working directory. Default: a fresh t.TempDir(), kept across
	// Stop and Start, so data the server writes there survives a restart.
	Dir string
	// Env holds extra "KEY=value" entries added to the test's environment.
	Env []string
	// Ready reports whether the server is ready to serve: nil means ready.
	// It is called repeatedly, each call bounded to 5s by its ctx, until it
	// returns nil or ReadyTimeout passes. Nil Ready means ready once the
	// process has started.
	Ready func(ctx context.Context) error
	// ReadyTimeout bounds the wait for Ready after each start. Default:
	// [DefaultReadyTimeout].
	ReadyTimeout time.Duration
}

// Process is a running (or stopped) server started by [Start]. Its methods
// are safe for concurrent use. It implements [conformance.Store].
type Process struct {
	cfg     Config
	logPath string

	// opMu serializes Start, Stop and the final cleanup, which wait.
	opMu sync.Mutex
	// mu guards current.
	mu      sync.Mutex
	current *run // nil while stopped
}

// run is one execution of the binary.
type run struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when Wait has returned
	err  error         // Wait's result; read only after done is closed
}

func (r *run) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Start starts the server described by cfg and waits until cfg.Ready
// reports it ready. The process runs in its own process group with output
// going to a log file in a test temporary directory; a t.Cleanup kills the
// group and waits for it when the test ends (and quotes the log's tail if the
// test failed). If the test binary itself dies, the kernel kills the server
// (parent-death signal).
//
// Start fails the test with t.Fatalf, quoting the log's tail, if the
// configuration is invalid, the process cannot start, exits early, or is
// not ready within cfg.ReadyTimeout. Call it from the test's goroutine.
func Start(t testing.TB, cfg Config) *Process {
	t.Helper()
	if cfg.Binary == "" {
		t.Fatalf("testserver: Config.Binary is empty")
	}
	if cfg.Name == "" {
		cfg.Name = filepath.Base(cfg.Binary)
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.ReadyTimeout < 0 {
		t.Fatalf("testserver: %s: Config.ReadyTimeout is negative (%v)", cfg.Name, cfg.ReadyTimeout)
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	// Made before the cleanup below is registered, so it is removed after
	// the process is dead (cleanups run last-in, first-out).
	logDir := t.TempDir()
	p := &Process{
		cfg:     cfg,
		logPath: filepath.Join(logDir, sanitize(cfg.Name)+".log"),
	}
	if err := p.launch(); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("testserver: %s log %s (last %d lines):\n%s", cfg.Name, p.logPath, logTailLines, p.LogTail(logTailLines))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ReadyTimeout)
	defer cancel()
	if err := p.waitReady(ctx); err != nil {
		p.kill()
		t.Fatalf("testserver: %v\n--- last %d lines of %s ---\n%s", err, logTailLines, p.logPath, p.LogTail(logTailLines))
	}
	return p
}

// sanitize makes name usable as a file name.
func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == filepath.Separator || r == 0 {
			return '_'
		}
		return r
	}, name)
}

// launch starts one run of the binary and makes it current.
func (p *Process) launch() error {
	logFile, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: open log: %w", p.cfg.Name, err)
	}
	// The child has its own copy of the descriptor; ours is not needed after
	// Start, and closing it here means no copying goroutine is needed.
	defer logFile.Close()
	fmt.Fprintf(logFile, "=== testserver: %s starting %s %s\n",
		time.Now().Format(time.RFC3339Nano), p.cfg.Binary, strings.Join(p.cfg.Args, " "))

	cmd := exec.Command(p.cfg.Binary, p.cfg.Args...)
	cmd.Dir = p.cfg.Dir
	cmd.Env = append(os.Environ(), p.cfg.Env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own group, so that signals reach any child it forks.
		Setpgid: true,
		// Killed if the test binary dies without running cleanups (panic,
		// timeout), so no server outlives the test run.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start %s: %w", p.cfg.Name, p.cfg.Binary, err)
	}
	r := &run{cmd: cmd, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	p.mu.Lock()
	p.current = r
	p.mu.Unlock()
	return nil
}

// running returns the current run if its process has not exited.
func (p *Process) running() (*run, error) {
	p.mu.Lock()
	r := p.current
	p.mu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("testserver: %s is stopped", p.cfg.Name)
	}
	if r.exited() {
		return nil, fmt.Errorf("testserver: %s has exited: %v", p.cfg.Name, r.err)
	}
	return r, nil
}

// waitReady polls Ready until it succeeds, the process exits, or ctx ends.
func (p *Process) waitReady(ctx context.Context) error {
	r, err := p.running()
	if err != nil {
		return err
	}
	if p.cfg.Ready == nil {
		return nil
	}
	var lastErr error
	for {
		if r.exited() {
			return fmt.Errorf("%s exited before it was ready: %v", p.cfg.Name, r.err)
		}
		attemptCtx, cancel := context.WithTimeout(ctx, readyAttemptTimeout)
		lastErr = p.cfg.Ready(attemptCtx)
		cancel()
		if lastErr == nil {
			return nil
		}
		timer := time.NewTimer(readyPollInterval)
		select {
		case <-r.done:
			timer.Stop()
			return fmt.Errorf("%s exited before it was ready: %v (last readiness check: %v)", p.cfg.Name, r.err, lastErr)
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%s not ready: %w (last readiness check: %v)", p.cfg.Name, ctx.Err(), lastErr)
		case <-timer.C:
		}
	}
}

// Stop kills the process group with SIGKILL (paused or not) and waits until
// the process has exited. Stopping a stopped server does nothing. It fails
// only if ctx ends first; the process is then still being killed and a
// later Stop waits for it again.
func (p *Process) Stop(ctx context.Context) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	p.mu.Lock()
	r := p.current
	p.mu.Unlock()
	if r == nil {
		return nil
	}
	// ESRCH means the group is already gone; the wait below still reaps.
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-r.done:
	case <-ctx.Done():
		return fmt.Errorf("testserver: stop %s: %w", p.cfg.Name, ctx.Err())
	}
	p.mu.Lock()
	p.current = nil
	p.mu.Unlock()
	return nil
}

// Start starts a stopped (or exited) server again with the same binary,
// arguments, environment and directory, and waits for Ready as [Start]
// does, bounded by ctx and ReadyTimeout. It fails if the server is running,
// or if the new process exits or is not ready in time; it then kills that
// process and the error quotes the log's tail.
func (p *Process) Start(ctx context.Context) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	p.mu.Lock()
	r := p.current
	p.mu.Unlock()
	if r != nil && !r.exited() {
		return fmt.Errorf("testserver: start %s: already running (pid %d)", p.cfg.Name, r.cmd.Process.Pid)
	}
	if r != nil {
		// The group may hold children of an exited leader.
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	}
	if err := p.launch(); err != nil {
		return fmt.Errorf("testserver: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ReadyTimeout)
	defer cancel()
	if err := p.waitReady(ctx); err != nil {
		p.killLocked()
		return fmt.Errorf("testserver: %w\n--- last %d lines of %s ---\n%s", err, logTailLines, p.logPath, p.LogTail(logTailLines))
	}
	return nil
}

// kill stops the process for good: the test is over or failed.
func (p *Process) kill() {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	p.killLocked()
}

// killLocked kills the current run and waits for it; opMu is held. SIGKILL
// cannot be caught or blocked, so the wait is bounded by the kernel.
func (p *Process) killLocked() {
	p.mu.Lock()
	r := p.current
	p.current = nil
	p.mu.Unlock()
	if r == nil {
		return
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	<-r.done
}

// PID returns the process id of the running server, or 0 while it is
// stopped or after it exited.
func (p *Process) PID() int {
	r, err := p.running()
	if err != nil {
		return 0
	}
	return r.cmd.Process.Pid
}
