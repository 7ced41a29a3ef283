// Command candidate is one candidate of the robustness suite: a process of
// its own that opens a backend with election.Open, campaigns for one
// election, and while it leads writes to the test's fenced sink with its
// term's fence, reporting every handler run and every event to the test
// over the sink's connection (robustness.Message, one JSON line each).
//
// Signals drive the faults that need the process's cooperation:
//
//   - SIGUSR1: Stop with a handler that lingers: the handler goes on writing
//     for -linger after its context ends, then returns; the process waits
//     for the release (Candidate.Done), closes its elector and exits 0.
//   - SIGUSR2 or SIGTERM: Close mid-term: Elector.Close, then exit 0.
//
// Either way the error Stop or Close returned, if any, goes to the test in
// the goodbye message.
//
// SIGSTOP, SIGCONT and SIGKILL need nothing from it. The test builds it
// with go build; it is not meant to be run by hand.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/electionkit/election"
	_ "github.com/electionkit/election/backends/consul"
	_ "github.com/electionkit/election/backends/etcd"
	_ "github.com/electionkit/election/backends/redis"
	"github.com/electionkit/election/robustness"
)

func main() {
	var (
		storeURL   = flag.String("url", "", "the backend URL for election.Open")
		name       = flag.String("election", "robustness", "the election to campaign for")
		id         = flag.String("id", "", "the candidate ID, also the process's name in the history")
		sinkAddr   = flag.String("sink", "", "the test's sink, host:port")
		writeEvery = flag.Duration("write-every", 25*time.Millisecond, "pause between two writes while leading")
		linger     = flag.Duration("linger", 2*time.Second, "how long a handler goes on after its context ends, after SIGUSR1")
	)
	var sf sentinelFlags
	flag.StringVar(&sf.master, "sentinel-master", "", "Redis with Sentinel: the master name (instead of -url)")
	flag.StringVar(&sf.sentinels, "sentinels", "", "Redis with Sentinel: the Sentinels' addresses, comma-separated")
	flag.StringVar(&sf.via, "via", "", "Redis with Sentinel: addr=proxy pairs, comma-separated: every connection to addr goes to proxy instead")
	flag.StringVar(&sf.prefix, "prefix", "robustness", "Redis with Sentinel: the key prefix")
	flag.DurationVar(&sf.ttl, "ttl", 2*time.Second, "Redis with Sentinel: the TTL")
	flag.IntVar(&sf.waitReplicas, "wait-replicas", 1, "Redis with Sentinel: replicas that must acknowledge every claim and renewal")
	flag.Parse()
	if (*storeURL == "") == (sf.master == "") || *id == "" || *sinkAddr == "" {
		fmt.Fprintln(os.Stderr, "candidate: one of -url and -sentinel-master, and -id and -sink are required")
		os.Exit(2)
	}
	open := func(ctx context.Context) (election.Backend, election.Config, error) {
		return election.Open(ctx, *storeURL)
	}
	if sf.master != "" {
		open = sf.open
	}
	if err := run(open, *name, *id, *sinkAddr, *writeEvery, *linger); err != nil {
		fmt.Fprintf(os.Stderr, "candidate %s: %v\n", *id, err)
		os.Exit(1)
	}
}

// sink is the connection to the test: messages out, acks in.
type sink struct {
	process string
	conn    net.Conn

	mu  sync.Mutex // serializes writes to conn
	enc *json.Encoder

	seq     atomic.Uint64
	pmu     sync.Mutex
	pending map[uint64]chan robustness.Ack
}

func dialSink(addr, process string) (*sink, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &sink{process: process, conn: conn, enc: json.NewEncoder(conn), pending: map[uint64]chan robustness.Ack{}}
	go s.readAcks()
	return s, s.send(robustness.Message{Kind: robustness.KindHello, PID: os.Getpid()})
}

// send sends m, stamped now. A process that has lost the test has no
// reason to go on: it exits.
func (s *sink) send(m robustness.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m.At = time.Now().UnixNano()
	m.Process = s.process
	if err := s.enc.Encode(m); err != nil {
		fmt.Fprintf(os.Stderr, "candidate %s: the test's sink is gone: %v\n", s.process, err)
		os.Exit(3)
	}
	return nil
}

func (s *sink) readAcks() {
	sc := bufio.NewScanner(s.conn)
	for sc.Scan() {
		var a robustness.Ack
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			fmt.Fprintf(os.Stderr, "candidate %s: bad ack %q: %v\n", s.process, sc.Text(), err)
			os.Exit(3)
		}
		s.pmu.Lock()
		ch := s.pending[a.Seq]
		delete(s.pending, a.Seq)
		s.pmu.Unlock()
		if ch != nil {
			ch <- a
		}
	}
	fmt.Fprintf(os.Stderr, "candidate %s: the test's sink closed the connection: %v\n", s.process, sc.Err())
	os.Exit(3)
}

// write sends one fenced write and waits for the sink's answer, or for
// ctx: a write given up on may still arrive, as on a real network.
func (s *sink) write(ctx context.Context, run uint64, t election.Term, lingering bool) {
	seq := s.seq.Add(1)
	ch := make(chan robustness.Ack, 1)
	s.pmu.Lock()
	s.pending[seq] = ch
	s.pmu.Unlock()
	_ = s.send(robustness.Message{Kind: robustness.KindWrite, Run: run, Election: t.Election, Candidate: t.ID, Fence: t.Fence, Seq: seq, Lingering: lingering})
	select {
	case <-ch:
	case <-ctx.Done():
		s.pmu.Lock()
		delete(s.pending, seq)
		s.pmu.Unlock()
	}
}

func run(open func(context.Context) (election.Backend, election.Config, error), name, id, sinkAddr string, writeEvery, linger time.Duration) error {
	// The handlers go in before the hello: the test sends these signals
	// only to a process that has said it (their default action kills).
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM)
	s, err := dialSink(sinkAddr, id)
	if err != nil {
		return fmt.Errorf("dial the sink: %w", err)
	}

	// The store may be down (a restart under way) when the process starts:
	// try again until it answers, as a restarted pod would.
	var (
		backend election.Backend
		cfg     election.Config
	)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		backend, cfg, err = open(ctx)
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, election.ErrInvalidArgument) {
			return err
		}
		select {
		case sig := <-sigs:
			return fmt.Errorf("%v before the store answered: %w", sig, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	defer election.CloseBackend(backend)
	cfg.OnEvent = func(ev election.Event) {
		_ = s.send(robustness.Message{Kind: robustness.KindEvent, Event: robustness.NewEventRecord(ev)})
	}
	el, err := election.New(backend, cfg)
	if err != nil {
		return err
	}

	var (
		lingering atomic.Bool
		runs      atomic.Uint64
	)
	handler := func(ctx context.Context, t election.Term) {
		n := runs.Add(1)
		_ = s.send(robustness.Message{Kind: robustness.KindBegin, Run: n, Election: t.Election, Candidate: t.ID, Fence: t.Fence})
		defer func() { _ = s.send(robustness.Message{Kind: robustness.KindReturn, Run: n}) }()
		// A step under way when the context ends still sends its write (a
		// process thawed from SIGSTOP finds both its timer and the end of
		// its context ready, and picks one): only the fence stops it then.
	steps:
		for {
			s.write(ctx, n, t, false)
			select {
			case <-ctx.Done():
				break steps
			case <-time.After(writeEvery):
			}
		}
		if !lingering.Load() {
			return
		}
		// A handler that finishes its batch after Stop: it keeps writing,
		// with its term's fence, while the elector keeps the claim.
		until := time.Now().Add(linger)
		wctx, cancel := context.WithDeadline(context.Background(), until)
		defer cancel()
		for wctx.Err() == nil {
			s.write(wctx, n, t, true)
			select {
			case <-wctx.Done():
			case <-time.After(writeEvery):
			}
		}
	}
	c, err := el.NewCandidate(election.CandidateConfig{Name: name, ID: id, Handlers: []election.Handler{handler}})
	if err != nil {
		return err
	}
	if err := c.Start(context.Background()); err != nil {
		return err
	}

	sig := <-sigs
	// An error of Stop or Close goes to the test with the goodbye: the
	// test decides what it may be.
	var errs []error
	if sig == syscall.SIGUSR1 {
		lingering.Store(true)
		// A Stop whose context ends while the handler lingers returns
		// ErrHandlersRunning; the claim is released once it returns.
		stopCtx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := c.Stop(stopCtx)
		cancel()
		if err != nil && !errors.Is(err, election.ErrHandlersRunning) {
			errs = append(errs, fmt.Errorf("stop: %w", err))
		}
		<-c.Done()
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := el.Close(closeCtx); err != nil {
		errs = append(errs, fmt.Errorf("close: %w", err))
	}
	bye := robustness.Message{Kind: robustness.KindBye}
	if err := errors.Join(errs...); err != nil {
		bye.Err, bye.Unavailable = err.Error(), errors.Is(err, election.ErrUnavailable)
	}
	return s.send(bye)
}
