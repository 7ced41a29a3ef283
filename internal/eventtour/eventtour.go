// Package eventtour drives real candidates on the memory backend through
// the events of a term in trouble, for the tests of the observability
// adapters (zaplog, slogevents, electionprom): a leader whose renewals
// fail and recover, then a Stop with a short context while its handler
// ignores its context, a partition that lets the term's deadline pass with
// the handler still running (EventHandlerOverrun), the handler returning
// late, a handover through the store's line, a prompt step-down and a stop
// of a candidate that holds nothing.
//
// It runs in a testing/synctest bubble, so its timing is exact: the
// overruns the events report are [Overrun] and [Late], to the nanosecond,
// and it takes milliseconds of real time.
package eventtour

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
	"github.com/electionkit/election/internal/eventrec"
)

// The tour's settings and the values its events carry.
const (
	// Election is the election every candidate of the tour campaigns in.
	Election = "jobs"
	// Stubborn is the ID of the first leader: its handler ignores its
	// context and returns [Late] past its term's deadline.
	Stubborn = "stubborn"
	// Heir is the ID of the candidate that waits in the store's line,
	// leads after Stubborn and stops promptly (it has no handler).
	Heir = "heir"
	// Idle is the ID of a candidate that is stopped without having
	// started: its only event is EventStopped.
	Idle = "idle"

	// TTL is the claim TTL of both electors.
	TTL = 300 * time.Millisecond
	// DriftMargin is the electors' drift margin: a term's deadline is the
	// send time of its last successful renewal + TTL − DriftMargin.
	DriftMargin = 30 * time.Millisecond
	// Overrun is the Overrun of Stubborn's EventHandlerOverrun: the core
	// reports handlers still running DriftMargin/2 after the deadline.
	Overrun = DriftMargin / 2
	// Linger is how long Stubborn's handler goes on after the overrun is
	// reported.
	Linger = 100 * time.Millisecond
	// Late is the Overrun of Stubborn's EventHandlersReturned.
	Late = Overrun + Linger
	// StopTimeout bounds Stubborn's Stop, which therefore returns an error
	// wrapping [election.ErrHandlersRunning].
	StopTimeout = 50 * time.Millisecond
)

// Tour is what one run saw.
type Tour struct {
	// Events are every event of both electors, as the hook received them
	// (in order per elector).
	Events []election.Event
	// Tokens are the owner tokens of every claim the store was sent.
	Tokens []string
}

// Find returns the first event of kind for the candidate ID ("" for
// session-wide events).
func (t *Tour) Find(kind election.EventKind, candidate string) (election.Event, bool) {
	for _, ev := range t.Events {
		if ev.Kind == kind && ev.Candidate == candidate {
			return ev, true
		}
	}
	return election.Event{}, false
}

// Run takes the tour in a synctest bubble, passing every event to hook
// (which must not block) before recording it, and returns what it saw. It
// fails t if a step does not happen as described in the package comment.
func Run(t *testing.T, hook func(election.Event)) *Tour {
	t.Helper()
	tour := &Tour{}
	tokens := &tokenLog{}
	synctest.Test(t, func(t *testing.T) {
		rec := eventrec.New()
		defer func() { tour.Events = rec.Events() }()
		ctx := context.Background()
		store := memory.NewStore()
		clientA, clientB := store.NewClient(), store.NewClient()
		elector := func(c *memory.Client, seed uint64) *election.Elector {
			el, err := election.New(&backend{Backend: c, tokens: tokens}, election.Config{
				TTL: TTL, DriftMargin: DriftMargin, Rand: rand.NewPCG(seed, seed),
				OnEvent: election.TeeEvents(hook, rec.Record),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = el.Close(ctx) })
			return el
		}
		elA, elB := elector(clientA, 1), elector(clientB, 2)
		candidate := func(el *election.Elector, id string, hs ...election.Handler) *election.Candidate {
			c, err := el.NewCandidate(election.CandidateConfig{Name: Election, ID: id, Handlers: hs})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		release := make(chan struct{})
		stubborn := candidate(elA, Stubborn, func(context.Context, election.Term) { <-release })
		heir := candidate(elB, Heir)
		idle := candidate(elB, Idle)

		// Stubborn leads; a partition makes it uncertain, healing it
		// before the deadline makes it lead again.
		if err := stubborn.Start(ctx); err != nil {
			t.Fatal(err)
		}
		rec.Wait(t, election.EventClaimed, Stubborn)
		cut(t, clientA)
		rec.Wait(t, election.EventUncertain, Stubborn)
		heal(t, clientA)
		rec.Wait(t, election.EventRecovered, Stubborn)

		// Heir joins the line.
		if err := heir.Start(ctx); err != nil {
			t.Fatal(err)
		}
		rec.Wait(t, election.EventClaimTaken, Heir)

		// Stop with a short context while the handler ignores its own:
		// the claim is kept. A partition then lets the deadline pass with
		// the handler still running.
		stopCtx, cancel := context.WithTimeout(ctx, StopTimeout)
		err := stubborn.Stop(stopCtx)
		cancel()
		if !errors.Is(err, election.ErrHandlersRunning) {
			t.Fatalf("Stop with handlers running = %v, want ErrHandlersRunning", err)
		}
		rec.Wait(t, election.EventSteppingDown, Stubborn)
		cut(t, clientA)
		rec.Wait(t, election.EventHandlerOverrun, Stubborn)
		time.Sleep(Linger)
		close(release)
		rec.Wait(t, election.EventHandlersReturned, Stubborn)
		// The release cannot reach the store; the store expires the
		// claim and elects Heir from its line.
		rec.Wait(t, election.EventReleased, Stubborn)
		rec.Wait(t, election.EventClaimed, Heir)
		heal(t, clientA)
		// Stop now reports the failed release (the elector retries it).
		if err := stubborn.Stop(ctx); !errors.Is(err, election.ErrUnavailable) {
			t.Fatalf("Stubborn's Stop after the failed release = %v, want ErrUnavailable", err)
		}

		// Heir steps down at once: it has no handler.
		if err := heir.Stop(ctx); err != nil {
			t.Fatalf("Heir's Stop: %v", err)
		}
		rec.Wait(t, election.EventReleased, Heir)
		if err := idle.Stop(ctx); err != nil {
			t.Fatalf("Idle's Stop: %v", err)
		}
		rec.Wait(t, election.EventStopped, Idle)
		for _, el := range []*election.Elector{elA, elB} {
			if err := el.Close(ctx); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	tour.Tokens = tokens.all()
	return tour
}

func cut(t *testing.T, c *memory.Client) {
	t.Helper()
	if err := c.Cut(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func heal(t *testing.T, c *memory.Client) {
	t.Helper()
	if err := c.Heal(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// backend records the owner token of every claim made through it, so that
// tests can look for whole tokens in what they log.
type backend struct {
	election.Backend
	tokens *tokenLog
}

func (b *backend) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	s, err := b.Backend.OpenSession(ctx, ttl)
	if err != nil {
		return nil, err
	}
	rs := &session{Session: s, tokens: b.tokens}
	if q, ok := s.(election.Queuer); ok {
		// Keep the store's line: the tour hands over through it.
		return &queueSession{session: rs, q: q}, nil
	}
	return rs, nil
}

type session struct {
	election.Session
	tokens *tokenLog
}

func (s *session) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	s.tokens.add(req.Token)
	return s.Session.Claim(ctx, req)
}

type queueSession struct {
	*session
	q election.Queuer
}

func (s *queueSession) Enqueue(ctx context.Context, req election.ClaimRequest) (election.Claim, *election.Leader, error) {
	s.tokens.add(req.Token)
	return s.q.Enqueue(ctx, req)
}

type tokenLog struct {
	mu     sync.Mutex
	tokens []string
}

func (l *tokenLog) add(tok string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens = append(l.tokens, tok)
}

func (l *tokenLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.tokens...)
}
