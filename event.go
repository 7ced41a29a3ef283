package election

import (
	"fmt"
	"time"
)

// EventKind says what an [Event] reports.
type EventKind int

// Event kinds, in roughly the order a candidate meets them.
const (
	// EventClaimed: a claim succeeded; the candidate is elected (Fence set).
	EventClaimed EventKind = iota + 1
	// EventClaimTaken: a claim found the election held (Leader set).
	EventClaimTaken
	// EventClaimFailed: a claim failed for another reason (Err set).
	EventClaimFailed
	// EventRenewed: a session renewal succeeded. Election is empty: one
	// renewal covers every claim of the elector. Count is the claims renewed.
	EventRenewed
	// EventRenewFailed: a renewal failed (Err set); leaders keep leading
	// until their deadline unless a later renewal succeeds.
	EventRenewFailed
	// EventLost: leadership ended without a release (Reason and Err set).
	EventLost
	// EventReleased: the candidate stepped down and released the election
	// (Resign or Stop).
	EventReleased
	// EventWatchFailed: the watch on the election failed and is being
	// re-established with backoff (Err set).
	EventWatchFailed
	// EventLeaderChanged: the candidate saw a new leader, or a vacancy
	// (Leader nil).
	EventLeaderChanged
)

var eventKindNames = map[EventKind]string{
	EventClaimed:       "claimed",
	EventClaimTaken:    "claim-taken",
	EventClaimFailed:   "claim-failed",
	EventRenewed:       "renewed",
	EventRenewFailed:   "renew-failed",
	EventLost:          "lost",
	EventReleased:      "released",
	EventWatchFailed:   "watch-failed",
	EventLeaderChanged: "leader-changed",
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
	// Err is the error, for failures and losses.
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
