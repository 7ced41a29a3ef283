package fxmodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/electionkit/election"
	"github.com/electionkit/election/health"
)

// Leadership answers "does this instance lead election X?" for the
// elections its jobs (or [Campaign]) named, and runs work only while it
// does. It is safe for concurrent use. Before the application starts and
// after it stops, this instance leads nothing.
type Leadership struct {
	el    *election.Elector
	cands map[string]*election.Candidate
	names []string // sorted
}

// newLeadership creates one candidate per election named by jobs, with
// the given ID and metadata (the core picks a random ID when id is
// empty). It does no I/O. It reports every bad job and election name at
// once, wrapping [election.ErrInvalidArgument].
func newLeadership(el *election.Elector, id string, meta map[string]string, jobs []Job) (*Leadership, error) {
	handlers, names, err := groupJobs(jobs)
	errs := []error{err}
	l := &Leadership{el: el, cands: make(map[string]*election.Candidate, len(names)), names: names}
	for _, name := range names {
		c, err := el.NewCandidate(election.CandidateConfig{Name: name, ID: id, Metadata: meta, Handlers: handlers[name]})
		if err != nil {
			errs = append(errs, fmt.Errorf("fxmodule: candidate for %q: %w", name, err))
			continue
		}
		l.cands[name] = c
	}
	if err := errors.Join(errs...); err != nil {
		_ = l.stop(context.Background()) // never started: no I/O
		return nil, err
	}
	return l, nil
}

// Liveness returns the module elector's liveness check (package health):
// 503 when its renewal loop is stuck or the application has stopped.
func (l *Leadership) Liveness() http.Handler { return health.Liveness(l.el) }

// Readiness returns a readiness check (package health) for the election
// name: by default ready while this instance leads it; set opts.Ready to
// health.WhenConnected to be ready while the store session is renewed.
// opts.Candidate is filled in. It fails, wrapping
// [election.ErrInvalidArgument], for an election no job named.
func (l *Leadership) Readiness(name string, opts health.Options) (http.Handler, error) {
	c, ok := l.cands[name]
	if !ok {
		return nil, fmt.Errorf("fxmodule: readiness of %q: %w: no job campaigns in it (elections: %v)", name, election.ErrInvalidArgument, l.names)
	}
	opts.Candidate = c
	return health.Readiness(l.el, opts), nil
}

// Elections returns the names of the elections this instance campaigns
// in, sorted.
func (l *Leadership) Elections() []string { return append([]string(nil), l.names...) }

// IsLeader reports whether this instance leads the election name now:
// it holds a term whose local deadline has not passed. It is false for an
// election no job named. The answer can be stale by the time it is used;
// use [Leadership.RunIfLeader] for work that must stop with leadership.
func (l *Leadership) IsLeader(name string) bool {
	c, ok := l.cands[name]
	return ok && c.IsLeader()
}

// Term returns the current term of the election name and true if this
// instance leads it. Pass Term.Fence to the systems the work writes to.
func (l *Leadership) Term(name string) (election.Term, bool) {
	c, ok := l.cands[name]
	if !ok {
		return election.Term{}, false
	}
	return c.Term()
}

// Leader returns the leader of the election name as this instance last
// saw it (itself or another instance, with its metadata), and false if
// none is known or no job named the election.
func (l *Leadership) Leader(name string) (election.Leader, bool) {
	c, ok := l.cands[name]
	if !ok {
		return election.Leader{}, false
	}
	return c.Leader()
}

// RunIfLeader calls fn only if this instance leads the election name,
// with a context cancelled when ctx ends or leadership ends, whichever is
// first; a handover waits for fn to return, as it waits for jobs. It
// returns fn's error; an error wrapping [election.ErrNotLeader], without
// calling fn, when this instance does not lead; and one wrapping
// [election.ErrInvalidArgument] when no job or [Campaign] named the
// election (so that a misspelt name is not mistaken for a follower).
func (l *Leadership) RunIfLeader(ctx context.Context, name string, fn func(ctx context.Context, t election.Term) error) error {
	c, ok := l.cands[name]
	if !ok {
		return fmt.Errorf("%w: fxmodule: no job or Campaign names election %q (campaigning in %q)",
			election.ErrInvalidArgument, name, l.names)
	}
	return c.RunIfLeader(ctx, fn)
}

// Candidate returns the candidate of the election name, for what the
// other methods do not cover (its Events channel, Resign). The module
// starts and stops it; do not call Start or Stop.
func (l *Leadership) Candidate(name string) (*election.Candidate, bool) {
	c, ok := l.cands[name]
	return c, ok
}

// start starts every candidate at once: each makes its first claim
// attempt before start returns, bounded by ctx. Store errors do not fail
// it (the candidates retry); only ctx ending does.
func (l *Leadership) start(ctx context.Context) error {
	return l.each(func(c *election.Candidate) error {
		if err := c.Start(ctx); err != nil {
			return fmt.Errorf("fxmodule: start campaign in %q: %w", c.Election(), err)
		}
		return nil
	})
}

// stop stops every candidate at once: each cancels its jobs, waits for
// them (bounded by ctx) and releases what it leads.
func (l *Leadership) stop(ctx context.Context) error {
	return l.each(func(c *election.Candidate) error {
		if err := c.Stop(ctx); err != nil {
			return fmt.Errorf("fxmodule: stop campaign in %q: %w", c.Election(), err)
		}
		return nil
	})
}

// each calls fn for every candidate concurrently and joins the errors.
func (l *Leadership) each(fn func(*election.Candidate) error) error {
	errs := make([]error, len(l.names))
	var wg sync.WaitGroup
	for i, name := range l.names {
		c, ok := l.cands[name]
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(c)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
