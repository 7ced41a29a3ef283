// Command postgres-fencing elects a leader on Postgres and fences the
// leader's writes to an ordinary table of yours with the term's fencing
// token, so that a deposed leader's late write is refused by the database
// itself:
//
//	UPDATE fencing_demo_report SET value = $2, fence = $1 WHERE id = 1 AND fence <= $1
//
// It needs a Postgres it may create two tables and a sequence in (the
// election's, prefix fencing_demo_, and fencing_demo_report):
//
//	go run ./examples/postgres-fencing -url 'postgres://app:secret@localhost:5432/app'
//	DATABASE_URL='postgres://app@localhost/app' go run ./examples/postgres-fencing
//
// Two nodes campaign for one election. node-1 leads and writes a few
// batches; then, in the middle of a batch, it stalls (a GC pause, a slow
// disk, a stopped VM) and its election connection is lost. Its term ends at
// its deadline and the database expires its claim; node-2 takes over with
// a higher fence and writes. When node-1 wakes up, the write it had already
// sent carries its old fence: the table refuses it, and node-2's work stays.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/postgres"
)

func main() {
	url := flag.String("url", os.Getenv("DATABASE_URL"), "Postgres connection string (postgres://...); default $DATABASE_URL")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "postgres-fencing: give a Postgres URL with -url or DATABASE_URL")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := run(ctx, os.Stdout, *url); err != nil {
		fmt.Fprintln(os.Stderr, "postgres-fencing:", err)
		os.Exit(1)
	}
}

// schema is the user's table: one row of leader-only state and the fence
// of the term that wrote it last.
const schema = `CREATE TABLE IF NOT EXISTS fencing_demo_report (
    id    int    PRIMARY KEY,
    fence bigint NOT NULL,
    value text   NOT NULL
);
INSERT INTO fencing_demo_report VALUES (1, 0, '') ON CONFLICT (id) DO NOTHING`

// writeFenced is the pattern to copy: every write of leader-only work
// carries the term's fence, and the row refuses a fence older than the one
// it holds. accepted is false when a newer term has written: this term is
// over, whatever this process believes.
func writeFenced(ctx context.Context, db *pgxpool.Pool, fence uint64, value string) (accepted bool, err error) {
	tag, err := db.Exec(ctx, `UPDATE fencing_demo_report SET value = $2, fence = $1 WHERE id = 1 AND fence <= $1`,
		int64(fence), value)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// Write is one attempted write, as the demo reports it.
type Write struct {
	Node     string
	Fence    uint64 // the writer's term's fence
	Value    string
	Accepted bool
}

// Report is what happened, for the test: every write attempt in order,
// and the row at the end.
type Report struct {
	Writes     []Write
	FinalFence uint64
	FinalValue string
}

// timing of the demo: a short TTL so that the takeover takes seconds.
const (
	ttl        = 2 * time.Second
	writeEvery = 200 * time.Millisecond
	stallAfter = 3 // node-1's batches before it stalls
)

// run plays the scenario against the database at url, writing the story to
// w, and returns what happened.
func run(ctx context.Context, w io.Writer, url string) (*Report, error) {
	d := &demo{w: w, start: time.Now(), quit: ctx.Done(), stalled: make(chan struct{}), successorWrote: make(chan struct{})}
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if _, err := db.Exec(ctx, schema); err != nil {
		return nil, fmt.Errorf("create fencing_demo_report: %w", err)
	}

	n1, err := d.newNode(ctx, url, "node-1", db)
	if err != nil {
		return nil, err
	}
	defer n1.close()
	n2, err := d.newNode(ctx, url, "node-2", db)
	if err != nil {
		return nil, err
	}
	defer n2.close()

	if err := n1.candidate.Start(ctx); err != nil { // vacant: node-1 is elected
		return nil, err
	}
	if err := n2.candidate.Start(ctx); err != nil { // node-2 waits, watching
		return nil, err
	}
	select {
	case <-d.stalled:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// node-1 is stalled in the middle of a batch, and its connection to
	// the election tables is lost: it cannot renew.
	d.say("node-1 stalls mid-batch, and its election connection is lost")
	if err := election.CloseBackend(n1.backend); err != nil {
		return nil, err
	}
	select {
	case <-d.successorWrote:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	d.handlersDone.Wait() // node-1's late write, then a few of node-2's
	if err := n2.candidate.Stop(ctx); err != nil {
		return nil, err
	}
	d.say("node-2 stopped: released")

	var rep Report
	var fence int64
	if err := db.QueryRow(ctx, `SELECT fence, value FROM fencing_demo_report WHERE id = 1`).Scan(&fence, &rep.FinalValue); err != nil {
		return nil, err
	}
	rep.FinalFence = uint64(fence)
	d.mu.Lock()
	rep.Writes = append(rep.Writes, d.writes...)
	d.mu.Unlock()
	refused := 0
	for _, wr := range rep.Writes {
		if !wr.Accepted {
			refused++
		}
	}
	d.say("the row holds %q at fence %d; %d writes accepted, %d refused as stale", rep.FinalValue, rep.FinalFence, len(rep.Writes)-refused, refused)
	return &rep, nil
}

// demo is the shared state of the scenario.
type demo struct {
	w     io.Writer
	start time.Time

	mu     sync.Mutex
	writes []Write

	quit           <-chan struct{} // the run's end
	stalled        chan struct{}   // closed when node-1 stalls
	successorWrote chan struct{}   // closed at node-2's first accepted write
	successorOnce  sync.Once
	handlersDone   sync.WaitGroup
}

func (d *demo) say(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.w, "%6.2fs  %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) record(wr Write) {
	d.mu.Lock()
	d.writes = append(d.writes, wr)
	d.mu.Unlock()
}

// node is one process of the service: its own election Backend (its own
// session and connections) and its leader-only work.
type node struct {
	name      string
	backend   *postgres.Backend
	elector   *election.Elector
	candidate *election.Candidate
}

func (d *demo) newNode(ctx context.Context, url, name string, db *pgxpool.Pool) (*node, error) {
	b, err := postgres.Open(ctx, url, postgres.Config{TablePrefix: "fencing_demo_"})
	if err != nil {
		return nil, err
	}
	el, err := election.New(b, election.Config{TTL: ttl, OnEvent: func(ev election.Event) {
		if ev.Kind == election.EventLost {
			d.say("%s's term with fence %d is over (%s): its handlers' context is cancelled", name, ev.Fence, ev.Reason)
		}
	}})
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	n := &node{name: name, backend: b, elector: el}
	n.candidate, err = el.NewCandidate(election.CandidateConfig{Name: "report", ID: name})
	if err != nil {
		n.close()
		return nil, err
	}
	d.handlersDone.Add(1)
	var once sync.Once
	n.candidate.AddHandlers(func(ctx context.Context, t election.Term) {
		defer once.Do(d.handlersDone.Done)
		d.work(ctx, t, db)
	})
	return n, nil
}

// close stops the node: its handlers have returned by now, so this only
// ends its session (releasing what it still holds).
func (n *node) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.elector.Close(ctx) // node-1's fails: its connection is gone, its claim expired
	_ = n.backend.Close()
}

// work is the leader-only work of a term: a batch every writeEvery, each
// written with the term's fence, until the term ends or a write is refused.
func (d *demo) work(ctx context.Context, t election.Term, db *pgxpool.Pool) {
	d.say("%s leads with fence %d", t.ID, t.Fence)
	written := 0
	for batch := 1; ; batch++ {
		select {
		case <-ctx.Done():
			d.say("%s's term ended", t.ID)
			return
		case <-time.After(writeEvery):
		}
		value := fmt.Sprintf("batch %d of %s", batch, t.ID)
		writeCtx := ctx
		stalls := t.ID == "node-1" && batch > stallAfter
		if stalls {
			// The stall: the batch is sent but reaches the database only
			// after the term has ended and node-2 has written (a write in
			// flight: the term's context can no longer stop it).
			close(d.stalled)
			select {
			case <-d.successorWrote:
			case <-d.quit:
				return
			}
			writeCtx = context.WithoutCancel(ctx)
			d.say("node-1 wakes up; its batch arrives with fence %d", t.Fence)
		}
		opCtx, cancel := context.WithTimeout(writeCtx, 5*time.Second)
		accepted, err := writeFenced(opCtx, db, t.Fence, value)
		cancel()
		if err != nil {
			if ctx.Err() == nil || stalls {
				d.say("%s: write failed: %v", t.ID, err)
			}
			if stalls {
				return
			}
			continue
		}
		d.record(Write{Node: t.ID, Fence: t.Fence, Value: value, Accepted: accepted})
		if !accepted {
			var stored int64
			_ = db.QueryRow(writeCtx, `SELECT fence FROM fencing_demo_report WHERE id = 1`).Scan(&stored)
			d.say("%s's write with fence %d REFUSED: the row holds fence %d, a newer term's", t.ID, t.Fence, stored)
			return
		}
		d.say("%s wrote %q with fence %d", t.ID, value, t.Fence)
		if t.ID == "node-2" {
			d.successorOnce.Do(func() { close(d.successorWrote) })
			if written++; written == 3 {
				return // enough to show; the term goes on until Stop
			}
		}
	}
}
