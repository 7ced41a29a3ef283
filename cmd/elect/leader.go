package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/electionkit/election"
)

func newLeaderCLI() *cli {
	c := newCLI("leader", "[flags] NAME",
		`Print the leader of election NAME (or the holder of lease NAME): its ID, fence and
metadata. Exit 3 if it is vacant.`,
		`  elect leader --url etcd://127.0.0.1:2379/myapp mailer
  elect leader -o json mailer | jq .leader.fence
`, 1, false)
	f := &commonFlags{}
	c.flags = f
	c.fs.StringVar(&f.output, "o", "text", "output `format`: text or json")
	c.fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "give up after this long")
	return c
}

func newWatchCLI() *cli {
	c := newCLI("watch", "[flags] NAME",
		`Stream the leader of election NAME: the current one first, then every change, one line
(or JSON object) each, until interrupted.`,
		`  elect watch --url redis://127.0.0.1:6379 mailer
  elect watch -o json mailer
`, 1, false)
	f := &commonFlags{}
	c.flags = f
	c.fs.StringVar(&f.output, "o", "text", "output `format`: text or json")
	return c
}

// leaderJSON is one leader in -o json output. It never holds an owner token
// (election.Leader has none).
type leaderJSON struct {
	ID       string            `json:"id"`
	Fence    uint64            `json:"fence"`
	Metadata map[string]string `json:"metadata"`
}

type viewJSON struct {
	Time     string      `json:"time,omitempty"`
	Election string      `json:"election"`
	Leader   *leaderJSON `json:"leader"`
}

func view(name string, l *election.Leader, at time.Time) viewJSON {
	v := viewJSON{Election: name}
	if !at.IsZero() {
		v.Time = at.UTC().Format(time.RFC3339Nano)
	}
	if l != nil {
		meta := l.Metadata
		if meta == nil {
			meta = map[string]string{}
		}
		v.Leader = &leaderJSON{ID: l.ID, Fence: l.Fence, Metadata: meta}
	}
	return v
}

func (v viewJSON) text() string {
	var b strings.Builder
	if v.Time != "" {
		b.WriteString(v.Time + " ")
	}
	if v.Leader == nil {
		fmt.Fprintf(&b, "%s: vacant", v.Election)
		return b.String()
	}
	fmt.Fprintf(&b, "%s: %s fence=%d", v.Election, v.Leader.ID, v.Leader.Fence)
	keys := make([]string, 0, len(v.Leader.Metadata))
	for k := range v.Leader.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, v.Leader.Metadata[k])
	}
	return b.String()
}

func printView(w io.Writer, format string, v viewJSON) {
	if format == "json" {
		b, _ := json.Marshal(v)
		fmt.Fprintln(w, string(b))
		return
	}
	fmt.Fprintln(w, v.text())
}

func checkFormat(c *cli) bool {
	if f := c.flags.output; f != "text" && f != "json" {
		fmt.Fprintf(os.Stderr, "elect %s: -o %q: want text or json\n", c.name, f)
		return false
	}
	return true
}

func leaderMain(c *cli) int {
	if !checkFormat(c) {
		return exitUsage
	}
	if err := positive("timeout", c.flags.timeout); err != nil {
		fmt.Fprintf(os.Stderr, "elect leader: %v\n", err)
		return exitUsage
	}
	name := c.pos[0]
	b, _, code := openStore(c)
	if code != 0 {
		return code
	}
	defer func() { _ = election.CloseBackend(b) }()
	if err := election.ValidateName(b, name); err != nil {
		fmt.Fprintf(os.Stderr, "elect leader: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.flags.timeout)
	defer cancel()
	l, err := b.Leader(ctx, name)
	switch {
	case errors.Is(err, election.ErrNoLeader):
		printView(os.Stdout, c.flags.output, view(name, nil, time.Time{}))
		return exitVacant
	case err != nil:
		fmt.Fprintf(os.Stderr, "elect leader: %v\n", err)
		return exitUnavailable
	}
	printView(os.Stdout, c.flags.output, view(name, &l, time.Time{}))
	return exitOK
}

func watchMain(c *cli) int {
	if !checkFormat(c) {
		return exitUsage
	}
	name := c.pos[0]
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b, cfg, code := openStore(c)
	if code != 0 {
		return code
	}
	defer func() { _ = election.CloseBackend(b) }()
	if c.verbose {
		cfg.OnEvent = eventHook(c, make(chan struct{}, 1))
	}
	el, err := election.New(b, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "elect watch: %v\n", err)
		return exitUsage
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = el.Close(ctx)
	}()
	changes, err := el.Observe(ctx, name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "elect watch: %v\n", err)
		return exitUsage
	}
	for ch := range changes {
		printView(os.Stdout, c.flags.output, view(name, ch.Leader, ch.Time))
	}
	return exitOK
}
