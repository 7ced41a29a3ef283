package testserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// dialEcho is a Ready check: the echo answers one round trip.
func dialEcho(port int) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		conn, err := echoRoundTrip(ctx, port, "ready?")
		if conn != nil {
			conn.Close()
		}
		return err
	}
}

// echoRoundTrip connects to port, sends msg and reads it back within ctx.
func echoRoundTrip(ctx context.Context, port int, msg string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	if err := roundTrip(conn, msg); err != nil {
		return conn, err
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

func roundTrip(conn net.Conn, msg string) error {
	if _, err := fmt.Fprintln(conn, msg); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(line); got != msg {
		return fmt.Errorf("echo returned %q, want %q", got, msg)
	}
	return nil
}

// processGone reports whether no process has pid (it was killed and reaped).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestStartServesAndCleanupKills(t *testing.T) {
	var pid int
	t.Run("server", func(t *testing.T) {
		port := FreePort(t)
		cfg := helperConfig(t, "echo", port)
		cfg.Ready = dialEcho(port)
		p := Start(t, cfg)
		pid = p.PID()
		if pid <= 0 {
			t.Fatalf("PID() = %d, want > 0", pid)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := echoRoundTrip(ctx, port, "hello")
		if err != nil {
			t.Fatalf("echo through started server: %v", err)
		}
		conn.Close()
		if tail := p.LogTail(5); !strings.Contains(tail, "helper: echo listening") {
			t.Errorf("LogTail(5) = %q, want the helper's output", tail)
		}
	})
	if !processGone(pid) {
		t.Errorf("process %d still exists after the test's cleanup", pid)
	}
}

func TestPauseResume(t *testing.T) {
	port := FreePort(t)
	cfg := helperConfig(t, "echo", port)
	cfg.Ready = dialEcho(port)
	p := Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	conn, err := echoRoundTrip(ctx, port, "before")
	if err != nil {
		t.Fatalf("echo before pause: %v", err)
	}
	defer conn.Close()
	if err := p.Pause(ctx); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if _, err := fmt.Fprintln(conn, "during"); err != nil {
		t.Fatalf("write while paused: %v", err)
	}
	reader := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if line, err := reader.ReadString('\n'); !isTimeout(err) {
		t.Fatalf("read from paused server = %q, %v; want a timeout", line, err)
	}
	if err := p.Resume(ctx); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	// The byte written while paused is answered once the server runs again.
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := reader.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "during" {
		t.Fatalf("read after resume = %q, %v; want \"during\"", line, err)
	}
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

func TestStopStart(t *testing.T) {
	port := FreePort(t)
	cfg := helperConfig(t, "echo", port)
	cfg.Ready = dialEcho(port)
	p := Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	firstPID := p.PID()

	// Stop works on a paused server too.
	if err := p.Pause(ctx); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !processGone(firstPID) {
		t.Fatalf("process %d exists after Stop", firstPID)
	}
	if pid := p.PID(); pid != 0 {
		t.Errorf("PID() after Stop = %d, want 0", pid)
	}
	if _, err := echoRoundTrip(ctx, port, "stopped"); err == nil {
		t.Fatalf("echo succeeded on a stopped server")
	}
	if err := p.Pause(ctx); err == nil {
		t.Errorf("Pause of a stopped server succeeded")
	}
	if err := p.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	if err := p.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if pid := p.PID(); pid == 0 || pid == firstPID {
		t.Errorf("PID() after restart = %d, want a new pid (first was %d)", pid, firstPID)
	}
	conn, err := echoRoundTrip(ctx, port, "again")
	if err != nil {
		t.Fatalf("echo after restart on the same port: %v", err)
	}
	conn.Close()
	if err := p.Start(ctx); err == nil {
		t.Errorf("Start of a running server succeeded")
	}
	if n := strings.Count(p.LogTail(100), "=== testserver:"); n != 2 {
		t.Errorf("log holds %d run headers, want 2:\n%s", n, p.LogTail(100))
	}
}

func TestStopKillsProcessGroup(t *testing.T) {
	p := Start(t, helperConfig(t, "fork", 0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	childPID := 0
	pattern := regexp.MustCompile(`helper: child pid (\d+)`)
	for childPID == 0 {
		if m := pattern.FindStringSubmatch(p.LogTail(10)); m != nil {
			childPID, _ = strconv.Atoi(m[1])
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("helper never reported its child: %s", p.LogTail(10))
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// The child was reparented, so we cannot reap it: wait until it is
	// gone or a zombie.
	for !processGone(childPID) && !isZombie(childPID) {
		select {
		case <-ctx.Done():
			t.Fatalf("child %d of the process group survived Stop", childPID)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func isZombie(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesized command name.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the calling goroutine, so a test can check that a helper fails the test.
type fatalRecorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalRecorder) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

// expectFatal runs fn with a recorder and returns its Fatalf message, or
// fails the test if fn returned without calling Fatalf.
func expectFatal(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	rec := &fatalRecorder{TB: t}
	done := make(chan bool)
	go func() {
		returned := false
		defer func() { done <- returned }()
		fn(rec)
		returned = true
	}()
	if <-done {
		t.Fatalf("returned without calling Fatalf")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.msg
}

func TestStartFailsWhenProcessExits(t *testing.T) {
	msg := expectFatal(t, func(tb testing.TB) {
		cfg := helperConfig(t, "exit", 0)
		cfg.Ready = func(ctx context.Context) error { return errors.New("not yet") }
		Start(tb, cfg)
	})
	if !strings.Contains(msg, "exited before it was ready") || !strings.Contains(msg, "helper: exiting with status 3") {
		t.Errorf("Fatalf message = %q, want the exit and the log tail", msg)
	}
}

func TestStartFailsWhenNeverReady(t *testing.T) {
	msg := expectFatal(t, func(tb testing.TB) {
		cfg := helperConfig(t, "silent", 0)
		cfg.ReadyTimeout = 500 * time.Millisecond
		cfg.Ready = func(ctx context.Context) error { return errors.New("not listening") }
		cfg.Name = "never-ready"
		Start(tb, cfg)
	})
	if !strings.Contains(msg, "never-ready not ready") || !strings.Contains(msg, "not listening") || !strings.Contains(msg, "=== testserver:") {
		t.Errorf("Fatalf message = %q, want the timeout, the last check and the log tail", msg)
	}
}

func TestProcessStartFailureKillsNewProcess(t *testing.T) {
	port := FreePort(t)
	cfg := helperConfig(t, "echo", port)
	ready := make(chan bool, 1)
	ready <- true
	cfg.Ready = func(ctx context.Context) error {
		select {
		case <-ready: // only the first start is ever ready
			return nil
		default:
			return errors.New("refusing")
		}
	}
	cfg.ReadyTimeout = 500 * time.Millisecond
	p := Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	err := p.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("Start = %v, want a readiness failure quoting the check", err)
	}
	if pid := p.PID(); pid != 0 {
		t.Errorf("PID() after failed Start = %d, want 0", pid)
	}
	if _, err := echoRoundTrip(ctx, port, "x"); err == nil {
		t.Errorf("the process of the failed Start is still serving")
	}
}
