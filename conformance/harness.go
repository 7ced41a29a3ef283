package conformance

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// ErrUnsupported is returned by a [Harness], [Link] or [Store] method for a
// fault it cannot inject. The suite skips the test that needs it and says
// why. The project's own backends support every fault.
var ErrUnsupported = errors.New("conformance: fault not supported by this harness")

// Harness gives the suite fresh, isolated access to one store. Each subtest
// gets its own Harness from the [NewHarness] function and closes it.
type Harness interface {
	// NewBackend returns a new client of the store that reaches it through a
	// link of its own, so that faults on that link affect only this client.
	// The suite closes clients it no longer needs with CloseBackend.
	NewBackend(ctx context.Context) (election.Backend, Link, error)

	// CloseBackend releases a client returned by NewBackend (connections,
	// goroutines). After it, the client leaves no goroutine running.
	CloseBackend(b election.Backend) error

	// Store returns the fault controls over the store as a whole.
	Store() Store

	// Timing returns the TTL the suite should use and how late after it the
	// store may expire a claim.
	Timing() Timing

	// Capabilities declares what the backend does beyond the Backend
	// contract. The suite runs a capability's checks only when it is
	// declared, and fails (never skips) a subtest that finds the backend's
	// sessions disagreeing with the declaration.
	Capabilities() Capabilities

	// InvalidNames returns election names the backend cannot store beyond
	// the core's own rules (empty, too long, invalid UTF-8), for which the
	// backend must return ErrInvalidArgument. It may be empty.
	InvalidNames() []string

	// Close stops everything the harness started.
	Close() error
}

// Timing is a harness's answer to "how fast is this store".
type Timing struct {
	// TTL is the TTL the suite campaigns with; at least the store's minimum.
	// Short TTLs make the suite fast.
	TTL time.Duration
	// ExpiryLag bounds how long after TTL the store takes to expire an
	// unrenewed claim and tell watchers (etcd's lessor checks every 500ms;
	// Consul keeps sessions up to 2×TTL). The suite allows this plus a
	// scheduling margin before it reports a slow takeover.
	ExpiryLag time.Duration
	// ClaimDelay is how long after a claim ends without a release (the
	// store expired it, an operator ended its session) the store may
	// refuse to let anyone claim the election: Consul's lock-delay. Such a
	// claim fails with a *election.TakenError that names no holder and
	// sets ExpiresIn (at most ClaimDelay + 2s), after which the core claims
	// again. Zero declares that an ended claim leaves the election
	// claimable at once: TryLease and WrongToken then fail a claim refused
	// with no holder after an expiry (LinearizableHistory leaves such
	// refusals out of the history whatever the declaration, as they change
	// nothing). The suite adds it to its takeover bounds, and TryLease and
	// WrongToken check that the election is claimable within ClaimDelay +
	// 2s of being found vacant.
	ClaimDelay time.Duration
}

// takeover is how long after a holder's last renewal the store may take to
// let another client claim: TTL, ExpiryLag and ClaimDelay. The suite's
// bounds on a takeover start from it.
func (t Timing) takeover() time.Duration { return t.TTL + t.ExpiryLag + t.ClaimDelay }

// Capabilities is a harness's answer to "what does this backend do beyond
// the Backend contract". The zero value declares nothing optional.
type Capabilities struct {
	// Queue declares that the backend's sessions implement
	// [election.Queuer]: the store keeps waiting claims in line and the
	// end of a term starts the next one. When it is set, QueuedHandoff
	// runs and LinearizableHistory enqueues claims and checks the line;
	// when it is not, QueuedHandoff is skipped and says why.
	//
	// Every session the suite opens on the raw Backend is checked against
	// it: a session that implements Queuer while Queue is false, or does
	// not while it is true, fails the subtest. Such a failure means the
	// harness is out of date with its backend, or the backend gained or
	// lost queueing by accident (a wrapper type that hides the method, a
	// method renamed); either way the core would campaign differently from
	// what the suite proved.
	Queue bool

	// Notify declares that the Backend implements [election.Notifier]:
	// watches by callback, which the core then uses instead of Watch.
	// When it is set, the WatchContract subtest checks the callback
	// contract (otherwise Watch's); every subtest that campaigns exercises
	// it anyway. A backend that implements Notifier while Notify is false,
	// or the other way round, fails the subtests that open a backend.
	Notify bool
}

// Link is one client's network path to the store.
type Link interface {
	// Cut drops all traffic between the client and the store in both
	// directions without closing connections (a partition, not a reset), so
	// requests hang until their deadlines.
	Cut(ctx context.Context) error
	// Heal restores the path.
	Heal(ctx context.Context) error
}

// Store controls the store process.
type Store interface {
	// Pause freezes the store (SIGSTOP): it neither answers nor expires
	// anything until Resume.
	Pause(ctx context.Context) error
	// Resume continues a paused store (SIGCONT).
	Resume(ctx context.Context) error
	// Stop kills the store (SIGKILL). Clients get ErrUnavailable until
	// Start. Whether data survives is the store's own behaviour (etcd keeps
	// it on disk; Redis without persistence loses it).
	Stop(ctx context.Context) error
	// Start starts a stopped store again on the same address and data.
	Start(ctx context.Context) error
}

// NewHarness makes a fresh Harness for one subtest. t is that subtest:
// servers the harness starts may register their cleanup and report start-up
// failures on it.
type NewHarness func(ctx context.Context, t testing.TB) (Harness, error)
