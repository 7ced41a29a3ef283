package robustness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/faultproxy"
	"github.com/electionkit/election/internal/history"
)

// waitBound bounds every wait for a process or a store: generous, for a
// loaded 2-core machine. Nothing is asserted about it but that it ends.
const waitBound = 90 * time.Second

// world is one backend's run: the store, the candidate processes, the
// sink they write to, and the history of it all.
type world struct {
	t        *testing.T
	store    *store
	sinkAddr string
	logDir   string
	ttl      time.Duration
	linger   time.Duration

	ln    net.Listener
	conns sync.WaitGroup // one per connection reader, and the acceptor

	// at is the time the recorder reads (Unix nanoseconds), set under mu
	// for each recorder call: a message's own send time, or now.
	at  atomic.Int64
	mu  sync.Mutex
	rec *history.Recorder
	// runs maps process → run number → its run in the history.
	runs map[string]map[uint64]*history.Run
	// sink is every write in the order the sink received them.
	sink []sinkWrite
	// highest is the greatest fence accepted per election, and who wrote it.
	highest       map[string]uint64
	highestWriter map[string]string
	// faults is the schedule as it happened.
	faults []faultRun
	// endErrors are the ErrUnavailable errors Stop or Close returned.
	endErrors []string
	// problems are protocol breaches found while recording.
	problems []string
	sockets  map[net.Conn]struct{}

	procs   []*proc // every process ever started, in order
	started int     // to name the next process
}

// sinkWrite is one write the sink received.
type sinkWrite struct {
	Process, Writer, Election string
	Fence                     uint64
	At                        time.Time // arrival, on the sink's clock
	Accepted                  bool
	// Stale: a write with a greater fence had arrived before (accepted).
	Stale bool
	// Lingering: written by a handler past its context, after Stop.
	Lingering bool
}

// proc is one candidate process.
type proc struct {
	name string
	// node is the index in store.nodes of the store node it talks to.
	node int
	cmd  *exec.Cmd
	// proxy is its link to the store: one fault proxy, or one per store
	// node (store.attachAll).
	proxy  links
	stderr string
	done   chan struct{}
	err    error // cmd.Wait's; read after done

	// ending is set (under world.mu) when the test made the process exit:
	// "kill", "linger-stop", "close" or "shutdown".
	ending string
	ready  bool // it said hello: its signal handlers are in
	bye    bool // it said goodbye (closed its elector)
	// byeErr is the error its Stop or Close returned, and byeUnavailable
	// whether that wraps election.ErrUnavailable.
	byeErr         string
	byeUnavailable bool
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func newWorld(t *testing.T, st *store, ttl time.Duration) *world {
	w := &world{
		t: t, store: st, ttl: ttl, linger: ttl * 3 / 2,
		runs: map[string]map[uint64]*history.Run{}, highest: map[string]uint64{}, highestWriter: map[string]string{},
		sockets: map[net.Conn]struct{}{},
	}
	w.rec = history.New(w.now)
	dir, err := os.MkdirTemp("", "robustness-"+st.name+"-")
	if err != nil {
		t.Fatal(err)
	}
	w.logDir = dir
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.ln, w.sinkAddr = ln, ln.Addr().String()
	w.conns.Add(1)
	go w.accept()
	return w
}

// now is the recorder's clock: the time set for the call under way.
func (w *world) now() time.Time {
	if at := w.at.Load(); at != 0 {
		return time.Unix(0, at)
	}
	return time.Now()
}

// record runs fn, which calls the recorder, with the recorder's clock at.
func (w *world) record(at time.Time, fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.at.Store(at.UnixNano())
	defer w.at.Store(0)
	fn()
}

func (w *world) accept() {
	defer w.conns.Done()
	for {
		conn, err := w.ln.Accept()
		if err != nil {
			return
		}
		w.mu.Lock()
		w.sockets[conn] = struct{}{}
		w.mu.Unlock()
		w.conns.Add(1)
		go w.serve(conn)
	}
}

// serve reads one candidate's messages until its process is gone.
func (w *world) serve(conn net.Conn) {
	defer w.conns.Done()
	defer func() {
		w.mu.Lock()
		delete(w.sockets, conn)
		w.mu.Unlock()
		conn.Close()
	}()
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	enc := json.NewEncoder(conn)
	for sc.Scan() {
		var m Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			w.problem("sink: unreadable message %q: %v", sc.Text(), err)
			return
		}
		if m.Kind == KindWrite {
			ack := w.write(m)
			// A paused candidate reads nothing; the acks are small and it
			// writes nothing either meanwhile, so this does not block long.
			_ = conn.SetWriteDeadline(time.Now().Add(waitBound))
			if err := enc.Encode(ack); err != nil {
				return
			}
			continue
		}
		w.record(time.Unix(0, m.At), func() { w.apply(m) })
	}
}

func (w *world) problem(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
}

// apply records a message other than a write; w.mu is held.
func (w *world) apply(m Message) {
	switch m.Kind {
	case KindHello:
		for _, p := range w.procs {
			if p.name == m.Process {
				p.ready = true
			}
		}
	case KindEvent:
		if m.Event == nil {
			w.problems = append(w.problems, fmt.Sprintf("%s: an event message without an event", m.Process))
			return
		}
		w.rec.OnEvent(m.Process)(m.Event.Event())
	case KindBegin:
		if w.runs[m.Process] == nil {
			w.runs[m.Process] = map[uint64]*history.Run{}
		}
		w.runs[m.Process][m.Run] = w.rec.Begin(m.Process, election.Term{Election: m.Election, ID: m.Candidate, Fence: m.Fence})
	case KindReturn:
		run := w.runs[m.Process][m.Run]
		if run == nil {
			w.problems = append(w.problems, fmt.Sprintf("%s: run %d returned without beginning", m.Process, m.Run))
			return
		}
		run.Return()
	case KindBye:
		for _, p := range w.procs {
			if p.name == m.Process {
				p.bye, p.byeErr, p.byeUnavailable = true, m.Err, m.Unavailable
			}
		}
	default:
		w.problems = append(w.problems, fmt.Sprintf("%s: unknown message kind %q", m.Process, m.Kind))
	}
}

// write is the fenced sink: it accepts a write whose fence is at least the
// highest it has accepted for the election, as a store that checks fences
// does, and records every write in arrival order.
func (w *world) write(m Message) Ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	highest := w.highest[m.Election]
	sw := sinkWrite{Process: m.Process, Writer: m.Candidate, Election: m.Election, Fence: m.Fence, At: time.Now(), Lingering: m.Lingering}
	switch {
	case m.Fence > highest:
		sw.Accepted = true
		w.highest[m.Election], w.highestWriter[m.Election] = m.Fence, m.Candidate
	case m.Fence == highest && m.Candidate == w.highestWriter[m.Election]:
		sw.Accepted = true
	case m.Fence == highest:
		// Two terms with one fence: refused, and a violation (checkSink).
	default:
		sw.Stale = true
	}
	w.sink = append(w.sink, sw)
	return Ack{Seq: m.Seq, Accepted: sw.Accepted, Highest: highest}
}

// links are a candidate's fault proxies, cut and healed together.
type links []*faultproxy.Proxy

// Cut cuts every link.
func (l links) Cut(ctx context.Context) error {
	var errs []error
	for _, p := range l {
		errs = append(errs, p.Cut(ctx))
	}
	return errors.Join(errs...)
}

// Heal heals every link.
func (l links) Heal(ctx context.Context) error {
	var errs []error
	for _, p := range l {
		errs = append(errs, p.Heal(ctx))
	}
	return errors.Join(errs...)
}

// Close closes every link.
func (l links) Close() error {
	var errs []error
	for _, p := range l {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// start starts a new candidate process behind a proxy of its own: to the
// store node it is attached to, or one to each node (store.attachAll).
func (w *world) start() *proc {
	w.t.Helper()
	w.started++
	name := fmt.Sprintf("c%d", w.started)
	node := (w.started - 1) % len(w.store.nodes)
	upstreams := w.store.nodes[node : node+1]
	if w.store.attachAll {
		upstreams = w.store.nodes
	}
	var proxy links
	for _, addr := range upstreams {
		l, err := faultproxy.New(addr)
		if err != nil {
			_ = proxy.Close()
			w.t.Fatalf("fault proxy for %s: %v", name, err)
		}
		proxy = append(proxy, l)
	}
	p := &proc{name: name, node: node, proxy: proxy, stderr: filepath.Join(w.logDir, name+".log"), done: make(chan struct{})}
	logFile, err := os.Create(p.stderr)
	if err != nil {
		w.t.Fatal(err)
	}
	defer logFile.Close()
	args := []string{"-url", ""}
	if w.store.url != nil {
		args[1] = w.store.url(proxy[0].Addr())
	} else {
		args = w.store.args(proxy)
	}
	p.cmd = exec.Command(candidateBin, append(args,
		"-id", name, "-sink", w.sinkAddr, "-linger", w.linger.String())...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// Killed if the test binary dies without its cleanups. The test never
	// ends a thread (no goroutine exits locked to one), so only then.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	w.mu.Lock()
	w.rec.AddProcess(history.Process{Name: name})
	w.procs = append(w.procs, p)
	w.mu.Unlock()
	if err := p.cmd.Start(); err != nil {
		w.t.Fatalf("start candidate %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p
}

// live returns the processes that run and that the test has not told to
// end.
func (w *world) live() []*proc {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*proc
	for _, p := range w.procs {
		if p.ending == "" && !p.exited() {
			out = append(out, p)
		}
	}
	return out
}

// leader returns the process whose handler runs with the greatest fence,
// or nil if no handler runs.
func (w *world) leader() *proc {
	w.mu.Lock()
	defer w.mu.Unlock()
	var best *proc
	var fence uint64
	for _, p := range w.procs {
		if p.ending != "" || p.exited() {
			continue
		}
		for _, run := range w.runs[p.name] {
			if run.Running() && run.Fence > fence {
				best, fence = p, run.Fence
			}
		}
	}
	return best
}

// end marks p as made to exit by the test, for reason.
func (w *world) end(p *proc, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p.ending == "" {
		p.ending = reason
	}
}

// signal sends sig to p, which must not have been reaped. SIGUSR1,
// SIGUSR2 and SIGTERM, whose default action would kill it, wait until p
// has said hello (its handlers are in) or has exited.
func (w *world) signal(p *proc, sig syscall.Signal) {
	w.t.Helper()
	if sig == syscall.SIGUSR1 || sig == syscall.SIGUSR2 || sig == syscall.SIGTERM {
		deadline := time.Now().Add(waitBound)
		for !w.isReady(p) && !p.exited() {
			if time.Now().After(deadline) {
				w.t.Errorf("%s did not say hello within %v", p.name, waitBound)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		w.t.Errorf("signal %v to %s: %v", sig, p.name, err)
	}
}

func (w *world) isReady(p *proc) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return p.ready
}

// kill kills p with SIGKILL and records its crash.
func (w *world) kill(p *proc) {
	w.end(p, "kill")
	w.signal(p, syscall.SIGKILL)
	w.record(time.Now(), func() { w.rec.Crash(p.name) })
	w.wait(p)
}

// wait waits for p to exit, and fails the test if it does not.
func (w *world) wait(p *proc) {
	w.t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitBound):
		w.t.Errorf("%s did not exit within %v; killing it", p.name, waitBound)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// reap closes the proxies of processes that exited and checks that each
// exited as the test made it: any other exit is a failure, with its log.
func (w *world) reap() {
	w.t.Helper()
	w.mu.Lock()
	procs := append([]*proc(nil), w.procs...)
	w.mu.Unlock()
	for _, p := range procs {
		if !p.exited() || p.proxy == nil {
			continue
		}
		_ = p.proxy.Close()
		p.proxy = nil
		w.mu.Lock()
		ending, bye, byeErr, unavailable := p.ending, p.bye, p.byeErr, p.byeUnavailable
		w.mu.Unlock()
		switch {
		case ending == "kill":
		case ending == "":
			w.t.Errorf("candidate %s exited by itself (%v):\n%s", p.name, p.err, tail(p.stderr))
			w.record(time.Now(), func() { w.rec.Crash(p.name) })
		case p.err != nil || !bye:
			w.t.Errorf("candidate %s, told to end (%s), exited with %v (said goodbye: %v):\n%s", p.name, ending, p.err, bye, tail(p.stderr))
		case byeErr != "" && !unavailable:
			w.t.Errorf("candidate %s, told to end (%s): %s", p.name, ending, byeErr)
		case byeErr != "":
			// The store did not answer a release in time (a release of an
			// earlier term, retried in the background, counts too): the
			// contract allows it; it is counted and shown.
			w.mu.Lock()
			w.endErrors = append(w.endErrors, fmt.Sprintf("%s (%s): %s", p.name, ending, byeErr))
			w.mu.Unlock()
		}
	}
}

// populate starts processes until n run.
func (w *world) populate(n int) {
	w.reap()
	for len(w.live()) < n {
		w.start()
	}
}

// shutdown ends every process with SIGTERM (a Close), then stops the sink.
func (w *world) shutdown() {
	for _, p := range w.live() {
		w.end(p, "shutdown")
		w.record(time.Now(), func() { w.rec.Closing(p.name) })
		w.signal(p, syscall.SIGTERM)
	}
	w.mu.Lock()
	procs := append([]*proc(nil), w.procs...)
	w.mu.Unlock()
	for _, p := range procs {
		w.wait(p)
	}
	w.reap()
	_ = w.ln.Close()
	w.mu.Lock()
	for c := range w.sockets {
		_ = c.Close()
	}
	w.mu.Unlock()
	w.conns.Wait()
}

// tail returns the last lines of the file at path.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// childTrouble returns the data races and panics the candidates' logs
// report.
func (w *world) childTrouble() []string {
	var out []string
	for _, p := range w.procs {
		b, err := os.ReadFile(p.stderr)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", p.name, err))
			continue
		}
		s := string(b)
		if strings.Contains(s, "WARNING: DATA RACE") || strings.Contains(s, "panic:") || strings.Contains(s, "fatal error:") {
			out = append(out, fmt.Sprintf("%s (log %s):\n%s", p.name, p.stderr, s))
		}
	}
	return out
}

// ctx is a context bounded by waitBound for one store operation.
func ctxBound() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), waitBound)
}
