//go:build linux

package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// supervisor is elect's handle on the supervisor process that runs one
// command: commands go down a pipe (one byte, a signal number), and the
// supervisor exits with the command's status once every descendant is
// gone.
type supervisor struct {
	pid    int
	ctl    *os.File // write end of the control pipe
	done   chan struct{}
	status int // valid once done is closed
}

// startSupervisor re-executes elect as the supervisor of spec's command.
//
// The supervisor gets SIGTERM when elect dies (Pdeathsig). The kernel sends
// it when the thread that forked the supervisor exits, not the process, so
// the goroutine that starts it stays locked to its thread until the
// supervisor has exited: the thread then lives exactly as long as elect
// needs it to.
func startSupervisor(spec childSpec) (*supervisor, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find elect's own executable: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	args := []string{supervisorArg, "-grace", spec.grace.String(), "-kill-margin", spec.killMargin.String(), "--"}
	cmd := exec.Command(exe, append(args, spec.argv...)...)
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{r} // fd 3 in the supervisor
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true, // keyboard signals reach elect, which forwards them
		Pdeathsig: syscall.SIGTERM,
	}
	s := &supervisor{ctl: w, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		s.pid = cmd.Process.Pid
		started <- nil
		err := cmd.Wait()
		s.status = exitStatus(cmd.ProcessState, err)
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			// The supervisor was killed: what it ran was adopted by
			// elect, a subreaper too, and dies here.
			killAdopted()
		}
		_ = w.Close()
		close(s.done)
	}()
	err = <-started
	_ = r.Close()
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("start the supervisor: %w", err)
	}
	return s, nil
}

// becomeSubreaper makes elect a child subreaper, so that if its supervisor
// is killed, the command's processes are reparented to elect, which kills
// them (killAdopted).
func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// killAdopted kills and reaps every descendant of elect. It runs only once
// a supervisor has exited, when elect has no other child.
func killAdopted() {
	for range 100 {
		pids := descendants(os.Getpid())
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signal asks the supervisor to send sig to every process of the command.
func (s *supervisor) signal(sig syscall.Signal) {
	_, _ = s.ctl.Write([]byte{byte(sig)})
}

// superviseMain is the supervisor: a child subreaper that runs the command
// in its own process group, passes on the signals elect sends down the
// control pipe (fd 3), and once elect is gone (the pipe closes, or the
// parent-death signal arrives) stops every descendant: SIGTERM, then SIGKILL
// after the grace or a kill margin before the deadline in
// ELECTION_DEADLINE_FILE, whichever is first. When the command exits, its
// remaining descendants get the same treatment. It exits with the
// command's status once no descendant is left.
func superviseMain(args []string) int {
	fs := flag.NewFlagSet(supervisorArg, flag.ContinueOnError)
	grace := fs.Duration("grace", time.Second, "")
	killMargin := fs.Duration("kill-margin", 0, "")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "elect: the supervisor is started by elect run and elect lease, not by hand")
		return exitUsage
	}
	syscall.CloseOnExec(3)
	ctl := os.NewFile(3, "control")
	parent := os.Getppid()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "elect: supervisor: PR_SET_CHILD_SUBREAPER: %v\n", err)
		return exitFailed
	}
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)

	argv := fs.Args()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "elect: %v\n", err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return exitNotFound
		}
		return exitNoExec
	}
	t := &tree{self: os.Getpid(), pgid: cmd.Process.Pid}

	reaped := make(chan reap, 16)
	go func() { // the only waiter: never cmd.Wait, which would race it
		defer close(reaped)
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, 0, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil {
				return // ECHILD: no descendant is left
			}
			reaped <- reap{pid, ws}
		}
	}()
	ctlc := make(chan syscall.Signal)
	go func() {
		defer close(ctlc)
		b := make([]byte, 1)
		for {
			if _, err := ctl.Read(b); err != nil {
				return
			}
			ctlc <- syscall.Signal(b[0])
		}
	}()

	status := exitFailed
	orphaned := false
	var killTimer *time.Timer
	var killc <-chan time.Time
	var killTick <-chan time.Time
	// wind sends SIGTERM to everything left and arms SIGKILL at kill.
	wind := func(kill time.Duration) {
		t.signal(syscall.SIGTERM)
		if killTimer == nil {
			killTimer = time.NewTimer(max(kill, 0))
			killc = killTimer.C
		}
	}
	parentGone := func() {
		if orphaned {
			return
		}
		orphaned = true
		ctlc = nil
		wind(min(*grace, untilDeadline(*killMargin)))
	}
	for {
		select {
		case r, ok := <-reaped:
			if !ok {
				if orphaned {
					return exitFailed
				}
				return status
			}
			if r.pid == t.pgid {
				t.leaderGone = true
				status = waitStatus(r.ws)
				wind(*grace)
			}
		case sig, ok := <-ctlc:
			if !ok {
				parentGone()
				continue
			}
			t.signal(sig)
			if sig == syscall.SIGKILL {
				killTick = time.Tick(50 * time.Millisecond)
			}
		case <-sigc:
			// Signals from elect come down the pipe; a signal here is the
			// parent-death signal (elect died: we were reparented) or
			// sent to every process of a unit, which elect handles.
			if os.Getppid() != parent {
				parentGone()
			}
		case <-killc:
			t.signal(syscall.SIGKILL)
			killTick = time.Tick(50 * time.Millisecond)
		case <-killTick:
			// Again, for processes forked while the last round was sent.
			t.signal(syscall.SIGKILL)
		}
	}
}

// untilDeadline is the time until killMargin before the deadline in
// ELECTION_DEADLINE_FILE, zero if it cannot be read.
func untilDeadline(killMargin time.Duration) time.Duration {
	b, err := os.ReadFile(os.Getenv("ELECTION_DEADLINE_FILE"))
	if err != nil {
		return 0
	}
	d, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return time.Until(d.Add(-killMargin))
}

type reap struct {
	pid int
	ws  syscall.WaitStatus
}

func waitStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// tree is the supervisor's descendants: the command's process group and
// every process below the supervisor, such as orphans it adopted as a
// subreaper and processes that left the group with setsid.
type tree struct {
	self       int
	pgid       int
	leaderGone bool // the group leader was reaped: its pgid may be reused
}

// signal sends sig once to every process of the tree: to the group, then
// to each descendant outside it. A process of the group signalled twice
// could see the signal twice (a shell runs its trap between the two), and
// a SIGUSR1 that toggles something would toggle it back.
func (t *tree) signal(sig syscall.Signal) {
	if !t.leaderGone {
		_ = syscall.Kill(-t.pgid, sig)
	}
	for _, pid := range descendants(t.self) {
		if !t.leaderGone {
			if pgid, err := syscall.Getpgid(pid); err == nil && pgid == t.pgid {
				continue // signalled with the group
			}
		}
		_ = syscall.Kill(pid, sig)
	}
	if sig == syscall.SIGTERM || sig == syscall.SIGINT {
		// A stopped process would not see the signal until continued.
		if !t.leaderGone {
			_ = syscall.Kill(-t.pgid, syscall.SIGCONT)
		}
		for _, pid := range descendants(t.self) {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
}

// descendants lists the processes below root, read from /proc.
func descendants(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}
