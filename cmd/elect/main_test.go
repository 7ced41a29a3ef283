package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// electBin is the elect binary the tests run as real processes, built once
// by TestMain (with -race when the tests run with it).
var electBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "elect-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	electBin = filepath.Join(dir, "elect")
	args := []string{"build", "-o", electBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build elect: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// waitBound bounds every wait for a condition: generous, for a loaded
// 2-core machine; conditions are polled, never timed.
const waitBound = 60 * time.Second

// proc is one elect process.
type proc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	stderr syncBuffer
	done   chan struct{}
	code   int
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startElect starts elect with args and url as ELECTION_URL. The test's
// cleanup stops it (SIGTERM, then SIGKILL) and logs its stderr.
func startElect(t testing.TB, name, url string, args ...string) *proc {
	t.Helper()
	return startElectEnv(t, name, []string{"ELECTION_URL=" + url}, args...)
}

// startElectEnv is startElect with env added to the test's environment.
func startElectEnv(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(electBin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.SysProcAttr = testProcAttr()
	p.cmd.Stdout = &p.stderr
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start elect %s: %v", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.code = exitStatus(p.cmd.ProcessState, err)
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("elect %s (exit %d) said:\n%s", name, p.code, p.stderr.String())
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(waitBound):
		p.t.Fatalf("elect %s did not exit within %v; it said:\n%s", p.name, waitBound, p.stderr.String())
		return 0
	}
}

// runElect runs elect to completion and returns its exit status and
// output.
func runElect(t testing.TB, url string, args ...string) (int, string) {
	t.Helper()
	p := startElect(t, strings.Join(args, " "), url, args...)
	code := p.wait()
	return code, p.stderr.String()
}

// eventually polls cond until it holds, failing the test after waitBound.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitBound, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// line is one line a test command appended to the shared log:
// "KIND ID FENCE PID UNIXNANO [DEADLINE]".
type line struct {
	kind     string // start, tick, term
	id       string
	fence    uint64
	pid      int
	at       time.Time // zero if the timestamp was cut short
	deadline time.Time // zero if none
}

func (l line) term() string { return fmt.Sprintf("%s/%d/%d", l.id, l.fence, l.pid) }

// tickScript writes a start line, then a tick line every 50ms, and a term
// line when it gets SIGTERM; with n > 0 it exits 0 after n ticks.
func tickScript(log string, n int) string {
	return fmt.Sprintf(`
log=%q
stamp() { echo "$1 $ELECTION_ID $ELECTION_FENCE $$ $(date +%%s%%N) $(cat "$ELECTION_DEADLINE_FILE")" >> "$log"; }
trap 'stamp term; exit 143' TERM
stamp start
i=0
while [ %d -eq 0 ] || [ $i -lt %d ]; do stamp tick; i=$((i+1)); sleep 0.05; done
`, log, n, n)
}

func readLines(t testing.TB, path string) []line {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []line
	s := bufio.NewScanner(f)
	for s.Scan() {
		fs := strings.Fields(s.Text())
		if len(fs) < 4 {
			continue // a line cut short by SIGKILL
		}
		l := line{kind: fs[0], id: fs[1]}
		l.fence, _ = strconv.ParseUint(fs[2], 10, 64)
		l.pid, _ = strconv.Atoi(fs[3])
		if len(fs) > 4 {
			if ns, err := strconv.ParseInt(fs[4], 10, 64); err == nil {
				l.at = time.Unix(0, ns)
			}
		}
		if len(fs) > 5 {
			l.deadline, _ = time.Parse(time.RFC3339Nano, fs[5])
		}
		out = append(out, l)
	}
	return out
}

// starts returns the start lines of the log.
func starts(lines []line) []line {
	var out []line
	for _, l := range lines {
		if l.kind == "start" {
			out = append(out, l)
		}
	}
	return out
}

// checkNoOverlap checks that the terms' lines do not interleave (in file
// order, which is the order of the appends) and that their fences strictly
// increase. It returns the terms in order.
func checkNoOverlap(t testing.TB, lines []line) []string {
	t.Helper()
	var order []string
	seen := map[string]bool{}
	var lastFence uint64
	for i, l := range lines {
		key := l.term()
		if len(order) > 0 && order[len(order)-1] == key {
			continue
		}
		if seen[key] {
			t.Fatalf("line %d: term %s wrote again after term %s had started: commands overlapped", i+1, key, order[len(order)-1])
		}
		if l.fence <= lastFence {
			t.Fatalf("line %d: fence %d after fence %d: fences must increase", i+1, l.fence, lastFence)
		}
		seen[key], lastFence = true, l.fence
		order = append(order, key)
	}
	return order
}

// gone reports whether pid has exited (no such process, or a zombie).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

func signalProc(t testing.TB, p *proc, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal elect %s: %v", p.name, err)
	}
}

func untilCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	t.Cleanup(cancel)
	return ctx
}
