package election

import (
	"context"
	"time"
)

// Backend is the narrow contract between the core and a store. A Backend is a
// client of one store (etcd, Redis, Consul, memory); it is safe for concurrent
// use by many electors and candidates.
//
// A Backend does only atomic store operations. Timers, jitter, deadlines,
// retries and state transitions live in the core ([Elector], [Candidate]), so
// a backend never decides when to renew or when leadership ends.
//
// Implementations prove themselves with the conformance suite
// (github.com/electionkit/election/conformance).
type Backend interface {
	// OpenSession starts a session: the store-side unit of liveness that
	// owns claims. ttl is the requested TTL; the store may grant a different
	// one (etcd raises TTLs below its minimum), which Session.TTL reports.
	// The store must not expire the session, or any claim made through it,
	// earlier than ttl after OpenSession was called, measured on the store.
	//
	// Errors: ErrInvalidArgument for a ttl the store cannot grant,
	// ErrUnavailable when the store cannot be reached.
	OpenSession(ctx context.Context, ttl time.Duration) (Session, error)

	// Leader reads the current holder of the election name.
	// It returns ErrNoLeader when the election is vacant.
	Leader(ctx context.Context, name string) (Leader, error)

	// Watch streams the holder of the election name. The first event is the
	// state at the time the watch was established; after it, one event for
	// every claim, release and (where the store pushes it) expiry, in the
	// order the store applied them. Consecutive changes may be coalesced into
	// one event showing the newer state, never reordered.
	//
	// The channel is closed when ctx ends. If the watch fails, the backend
	// sends one event with Err set (wrapping ErrUnavailable when the store
	// is unreachable) and closes the channel; the core re-establishes it.
	Watch(ctx context.Context, name string) (<-chan WatchEvent, error)

	// Limits reports what names and TTLs the store accepts. It does no I/O.
	Limits() Limits
}

// Session is a store session opened by [Backend.OpenSession]: every claim
// made through it lives as long as the session is renewed (etcd lease,
// Consul session) or as long as its own TTL (Redis key expiry, renewed in
// one batch). A Session is safe for concurrent use.
type Session interface {
	// TTL returns the TTL the store granted for this session and its claims.
	TTL() time.Duration

	// Claim atomically takes the election req.Name for req.Token if it is
	// vacant. The new term's fencing token is strictly greater than that of
	// every earlier term of the same election, including terms from before
	// a store restart.
	//
	// Errors: a *TakenError (errors.Is ErrTaken) naming the holder when the
	// election is held; ErrSessionExpired when this session no longer exists
	// on the store; ErrUnavailable when the store cannot be reached (the
	// claim may or may not have been applied; the core releases it by token).
	Claim(ctx context.Context, req ClaimRequest) (Claim, error)

	// Renew extends the session and every claim in claims by the granted TTL
	// in a number of round trips that does not grow with len(claims). Each
	// claim is renewed only if the store still holds it with the same token;
	// the check and the extension are one atomic step per claim.
	//
	// It returns nil when all claims were renewed; a *NotOwnerError
	// (errors.Is ErrNotOwner) listing the claims the store no longer holds
	// for this owner, the others renewed; ErrSessionExpired when the
	// session itself is gone (every claim is lost); any other error
	// (wrapping ErrUnavailable) when the outcome is unknown.
	//
	// After a nil (or *NotOwnerError) return, every claim renewed and every
	// claim whose expiry depends on the session is valid until at least the
	// time Renew was called plus TTL, as the store measures time.
	Renew(ctx context.Context, claims []Claim) error

	// Release atomically deletes the claim if the store holds it with the
	// same token, and notifies watchers. It returns ErrNotOwner (and changes
	// nothing) when the token does not match or the election is vacant.
	Release(ctx context.Context, c Claim) error

	// Close ends the session on the store. Claims that still depend on it are
	// dropped (etcd lease revoke, Consul session destroy) or left to expire
	// (Redis). Close is idempotent.
	Close(ctx context.Context) error
}

// ClaimRequest is what the core asks a [Session] to store when it claims an
// election.
type ClaimRequest struct {
	// Name is the election name, already validated against [Limits].
	Name string
	// Token is the owner token: random, unique to this claim, compared by
	// renew and release. Backends store it verbatim and never log it.
	Token string
	// ID is the candidate's ID, shown to observers.
	ID string
	// Metadata is user data shown to observers with the leader.
	Metadata map[string]string
}

// Claim is a held election as its owner knows it.
type Claim struct {
	// Name is the election name.
	Name string
	// Token is the owner token the claim was made with.
	Token string
	// Fence is the fencing token of this term.
	Fence uint64
}

// Leader describes one term of an election: who holds it and its fencing
// token. It never contains the owner token.
type Leader struct {
	// Election is the election name.
	Election string
	// ID is the holder's candidate ID.
	ID string
	// Metadata is the holder's user metadata. Treat it as read-only.
	Metadata map[string]string
	// Fence is the term's fencing token. Fences of one election strictly
	// increase from term to term; pass it to the systems the leader writes
	// to so they can reject writes from an older term.
	Fence uint64
}

// WatchEvent is one state of an election as seen by [Backend.Watch].
type WatchEvent struct {
	// Leader is the holder, or nil when the election is vacant.
	Leader *Leader
	// ExpiresIn is the holder's remaining TTL when the store does not push
	// an event on expiry (Redis); the core then re-reads the election when
	// it elapses. Zero when the store pushes expiry or the TTL is unknown.
	ExpiresIn time.Duration
	// Err is set on the last event of a failed watch.
	Err error
}

// Limits describes what a store accepts. The core checks names and TTLs
// against it once, at construction, and returns ErrInvalidArgument naming
// the problem.
type Limits struct {
	// MinTTL is the smallest TTL the store grants as asked. Zero means 1ms.
	MinTTL time.Duration
	// MaxTTL is the largest TTL the store grants. Zero means no limit.
	MaxTTL time.Duration
	// MaxNameLen is the longest election name in bytes. Zero means 256.
	MaxNameLen int
	// TTLGranularity, when set, is the unit TTLs must be a whole multiple
	// of (etcd leases count in seconds). The core rejects other TTLs rather
	// than round them: down would expire claims early, up would slow every
	// takeover.
	TTLGranularity time.Duration
}

// NameValidator is an optional interface for a [Backend] that stores fewer
// names than the core's rules allow (non-empty, valid UTF-8, printable, at
// most Limits.MaxNameLen bytes). ValidateName returns an error wrapping
// ErrInvalidArgument for a name the store cannot hold. Without it, the
// core's rules alone apply.
type NameValidator interface {
	ValidateName(name string) error
}

// Notifier is an optional interface for a [Backend] whose watches share
// store watches (one per key prefix, say) and are told apart inside the
// backend. Notify is [Backend.Watch] with a function in place of a
// channel and a stop function in place of the context's end, so that a
// watched election costs no goroutine and no context: the core uses it
// instead of Watch when the backend has it.
type Notifier interface {
	// Notify calls fn with the events Watch would send, with the same
	// meaning and in the same order: the first shows the state when the
	// watch was established. Calls for one watch never overlap. fn does not
	// block; it must not be called with a lock held that fn could need.
	// If the watch fails, fn gets one event with Err set (wrapping
	// ErrUnavailable when the store is unreachable) and no more.
	//
	// ctx bounds the establishment of the watch only; once Notify has
	// returned, the watch lasts until stop is called or it fails. stop
	// never blocks, may be called more than once and from fn, and leaves
	// nothing of the watch in the backend. Once stop has returned, fn is
	// called at most once more, by a delivery already under way (the
	// caller drops such a late event).
	//
	// Errors, when the watch cannot be established: as Watch's.
	Notify(ctx context.Context, name string, fn func(WatchEvent)) (stop func(), err error)
}

// ClaimBatcher is an optional interface for a [Session] that can make
// several claims in one store operation (Consul: one transaction). When
// candidates of one elector claim at the same time (10,000 of them
// starting), the claims that arrive while one is in flight wait for it and
// then go to ClaimBatch together, so a burst costs the store one write per
// batch instead of one per claim. Without it, each claim is one Claim.
type ClaimBatcher interface {
	// ClaimBatch makes each claim of reqs as [Session.Claim] would, with
	// the same meaning for each answer: claims[i] and errs[i] answer
	// reqs[i], and one taken election does not fail the others. reqs
	// holds at most MaxClaimBatch claims, of distinct names.
	ClaimBatch(ctx context.Context, reqs []ClaimRequest) (claims []Claim, errs []error)

	// MaxClaimBatch returns the largest number of claims ClaimBatch
	// takes at once.
	MaxClaimBatch() int
}

// SessionEnder is an optional interface for a [Session] whose Close ends
// every claim made through it at once, in one store write that watchers
// see as they see a release: etcd revokes the lease, which deletes its
// keys; Redis deletes the session key and announces it. When the session
// of an elector reports true, [Elector.Close] leaves the claims of the
// candidates it stops to the session's end instead of releasing each one,
// so that Close costs one store operation whatever the number of
// elections.
//
// EndsClaims reports false where ending the session leaves its claims to
// expire, or delays their takeover (a lock-delay on the session's keys):
// Close then releases each claim. Consul reports true: its session's Close
// deletes the keys of the claims it knows it made in batched transactions
// before destroying the session, so that its lock-delay holds none of
// those it reaches within its time.
type SessionEnder interface {
	EndsClaims() bool
}

// Queuer is an optional interface for a [Session] whose store can keep
// waiting claims in line, ordered so that the store write that ends a term
// (a release, a session expiry) also starts the next one: the first claim in
// line becomes the holder with no write of its own, and a graceful handoff
// costs one store round trip and one watch notification instead of two
// round trips. The etcd backend implements it, the way etcd's
// concurrency.Election queues its waiters.
//
// When a Session implements Queuer, a [Candidate] waits in line instead of
// claiming again after each release. Claim keeps its meaning (take the
// election only if it is vacant; [TryLease] uses it).
type Queuer interface {
	// Enqueue takes the election req.Name for req.Token if it is vacant, as
	// Claim does, and otherwise puts the claim in line behind every claim
	// already there. It returns the claim, whose Fence is its term's fence
	// (strictly greater than every earlier term's, as with Claim), and the
	// current holder, nil when the claim holds the election now.
	//
	// A claim in line becomes the holder by itself once every claim ahead of
	// it has ended; [Backend.Watch] then shows a Leader with the claim's
	// Fence, and from then on the claim is held exactly as if Claim had
	// returned it (Renew and Release apply to it). Until then it lives as
	// long as the session; Release takes it out of line.
	//
	// Errors as Claim's, except that Enqueue never returns a *TakenError.
	Enqueue(ctx context.Context, req ClaimRequest) (c Claim, holder *Leader, err error)
}
