package election

import (
	"fmt"
	"sync"
	"time"
)

// EventKind says what an [Event] reports.
type EventKind int

// Event kinds. Every change of a candidate's [State] is reported by one
// event, whose State field is the state it left the candidate in; the
// others report what a candidate saw (LeaderChanged, WatchFailed,
// HandlerOverrun) or what its elector's session did (Renewed,
// RenewFailed).
const (
	// EventClaimed: a claim succeeded, or the store elected the claim from
	// its line (Queued set); the candidate leads (Fence set).
	EventClaimed EventKind = iota + 1
	// EventClaimTaken: a claim found the election held (Leader set); with
	// Queued set, the claim waits in line.
	EventClaimTaken
	// EventClaimFailed: a claim failed for another reason (Err set); the
	// candidate retries after a backoff.
	EventClaimFailed
	// EventRenewed: a session renewal succeeded. Election is empty: one
	// renewal covers every claim of the elector. Count is the claims renewed.
	EventRenewed
	// EventRenewFailed: a session renewal failed (Err set). Election is
	// empty; each leader it concerns reports EventUncertain.
	EventRenewFailed
	// EventLost: leadership ended without a release (Reason and Err set).
	// The handlers' context is cancelled; the claim, if the store may still
	// hold it, is kept (and renewed) until they return, then released.
	EventLost
	// EventReleased: the claim was released after the handlers returned
	// (Err set if the store did not answer; the elector retries).
	EventReleased
	// EventWatchFailed: the watch on the election failed and is being
	// re-established with backoff (Err set).
	EventWatchFailed
	// EventLeaderChanged: the candidate saw a new leader, or a vacancy
	// (Leader nil).
	EventLeaderChanged
	// EventStarted: Start began the campaign.
	EventStarted
	// EventUncertain: a renewal of the leader's session failed; the term
	// goes on until its deadline unless a renewal succeeds first (Err set).
	EventUncertain
	// EventRecovered: a renewal succeeded again; the uncertain term goes on
	// with the same fence.
	EventRecovered
	// EventSteppingDown: Stop, Resign or Close ended the term: the handlers'
	// context is cancelled and the claim is kept until they return.
	EventSteppingDown
	// EventHandlersReturned: the last handler of an ended term returned.
	// Overrun is how long after the term's deadline, if it was late.
	EventHandlersReturned
	// EventHandlerOverrun: handlers of an ended term still run past the
	// term's deadline, after which the store may expire the claim and elect
	// another leader: their writes are protected only by the fence. Overrun
	// is how far past the deadline they are.
	EventHandlerOverrun
	// EventStopped: the candidate stopped holding nothing. (A stop that
	// releases a claim is reported by EventReleased with State
	// StateStopped.)
	EventStopped
	// EventClaiming: a claim is on its way to the store: the watch showed a
	// vacancy, a retry timer fired, or the candidate left the line or its
	// hold-off after Resign.
	EventClaiming
)

var eventKindNames = map[EventKind]string{
	EventClaimed:          "claimed",
	EventClaimTaken:       "claim-taken",
	EventClaimFailed:      "claim-failed",
	EventRenewed:          "renewed",
	EventRenewFailed:      "renew-failed",
	EventLost:             "lost",
	EventReleased:         "released",
	EventWatchFailed:      "watch-failed",
	EventLeaderChanged:    "leader-changed",
	EventStarted:          "started",
	EventUncertain:        "uncertain",
	EventRecovered:        "recovered",
	EventSteppingDown:     "stepping-down",
	EventHandlersReturned: "handlers-returned",
	EventHandlerOverrun:   "handler-overrun",
	EventStopped:          "stopped",
	EventClaiming:         "claiming",
}

// String returns the kind's name, for logs and metric labels.
func (k EventKind) String() string {
	if s, ok := eventKindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// LossReason says why leadership ended without a release.
type LossReason string

// Loss reasons carried by [EventLost].
const (
	// LossDeadline: no renewal succeeded before the local deadline.
	LossDeadline LossReason = "deadline"
	// LossNotOwner: the store no longer holds the claim for this owner.
	LossNotOwner LossReason = "not-owner"
	// LossSessionExpired: the store session expired.
	LossSessionExpired LossReason = "session-expired"
	// LossSuperseded: the watch showed a newer term of the election.
	LossSuperseded LossReason = "superseded"
)

// Event is one thing that happened to an elector or candidate. Events are
// delivered to [Config.OnEvent] and to [Candidate.Events].
type Event struct {
	// Kind says what happened.
	Kind EventKind
	// State is the candidate's state after the event; zero (StateIdle) for
	// session-wide events.
	State State
	// Time is when it happened, on the elector's clock.
	Time time.Time
	// Election and Candidate name the election and the candidate's ID;
	// empty for session-wide events (EventRenewed, EventRenewFailed).
	Election, Candidate string
	// TokenPrefix is the first characters of the owner token (never the
	// whole token), to correlate log lines of one term.
	TokenPrefix string
	// Fence is the fencing token of the term concerned, if any.
	Fence uint64
	// Leader is the holder seen, for EventClaimTaken and EventLeaderChanged.
	Leader *Leader
	// Queued is set on EventClaimTaken when the claim waits in the store's
	// line (see [Queuer]): it holds the election, with no further claim,
	// once every claim ahead of it has ended. On EventClaimed it says the
	// term came from the line: the store elected the claim when the term
	// before it ended, and Latency is zero (no claim was sent).
	Queued bool
	// Latency is how long the store operation took, where one was made.
	Latency time.Duration
	// Count is the number of claims a renewal covered.
	Count int
	// TTL is the TTL the store granted, for EventClaimed and EventRenewed.
	TTL time.Duration
	// Reason is why leadership was lost, for EventLost.
	Reason LossReason
	// Overrun is how far past the term's deadline its handlers ran, for
	// EventHandlerOverrun and EventHandlersReturned.
	Overrun time.Duration
	// Err is the error, for failures and losses. It never carries a whole
	// owner token.
	Err error
}

// TeeEvents returns an OnEvent hook that passes every event to each of fns
// in order (nil entries are skipped): logging and metrics side by side.
func TeeEvents(fns ...func(Event)) func(Event) {
	var live []func(Event)
	for _, f := range fns {
		if f != nil {
			live = append(live, f)
		}
	}
	return func(ev Event) {
		for _, f := range live {
			f(ev)
		}
	}
}

// dispatcher delivers events to Config.OnEvent in the order they were
// emitted, from a goroutine of its own that runs only while events are
// queued, so that no driver or renewal loop ever waits for a callback, and
// a callback may call Stop, Resign or Close.
type dispatcher struct {
	fn func(Event)

	mu      sync.Mutex
	q       []Event
	running bool
	g       uint64        // the delivering goroutine
	idle    chan struct{} // closed when the queue drains
}

func (d *dispatcher) push(ev Event) {
	if d.fn == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.q = append(d.q, ev)
	if !d.running {
		d.running = true
		d.idle = make(chan struct{})
		go d.drain()
	}
}

func (d *dispatcher) drain() {
	g := goid()
	for {
		d.mu.Lock()
		d.g = g
		if len(d.q) == 0 {
			d.running = false
			d.g = 0
			close(d.idle)
			d.mu.Unlock()
			return
		}
		ev := d.q[0]
		d.q[0] = Event{}
		d.q = d.q[1:]
		d.mu.Unlock()
		d.fn(ev)
	}
}

// wait returns once every queued event has been delivered.
func (d *dispatcher) wait() {
	d.mu.Lock()
	if !d.running {
		d.mu.Unlock()
		return
	}
	idle := d.idle
	d.mu.Unlock()
	<-idle
}

// isSelf reports whether the caller is the delivering goroutine.
func (d *dispatcher) isSelf() bool {
	g := goid()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running && d.g == g
}
