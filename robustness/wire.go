package robustness

import (
	"errors"
	"time"

	"github.com/electionkit/election"
)

// Kinds of Message a candidate sends to the test.
const (
	// KindHello is the first message on a connection: it names the process.
	KindHello = "hello"
	// KindEvent carries one election.Event of the candidate's elector.
	KindEvent = "event"
	// KindBegin: a handler run starts (Run, Election, Candidate, Fence).
	KindBegin = "begin"
	// KindWrite is a fenced write to the sink; the test answers with an
	// Ack carrying the same Seq.
	KindWrite = "write"
	// KindReturn: the handler run Run returns.
	KindReturn = "return"
	// KindBye: the process is about to exit after closing its elector.
	KindBye = "bye"
)

// Message is one line of JSON from a candidate process to the test. At is
// the sender's wall clock (Unix nanoseconds) when it sent the message: the
// candidates and the test share one machine and so one real-time clock,
// which orders a handler's return in one process before a handler's start
// in another better than the order in which the test happens to read two
// connections.
type Message struct {
	Kind    string `json:"k"`
	At      int64  `json:"at"`
	Process string `json:"p,omitempty"`
	PID     int    `json:"pid,omitempty"`
	// Run numbers a handler run within its process.
	Run       uint64       `json:"run,omitempty"`
	Election  string       `json:"e,omitempty"`
	Candidate string       `json:"c,omitempty"`
	Fence     uint64       `json:"f,omitempty"`
	Seq       uint64       `json:"seq,omitempty"`
	Lingering bool         `json:"linger,omitempty"`
	Event     *EventRecord `json:"ev,omitempty"`
	// Err is, on KindBye, the error Stop or Close returned, if any, and
	// Unavailable whether it wraps election.ErrUnavailable.
	Err         string `json:"err,omitempty"`
	Unavailable bool   `json:"unavail,omitempty"`
}

// Ack is the sink's answer to a KindWrite Message.
type Ack struct {
	Seq      uint64 `json:"seq"`
	Accepted bool   `json:"ok"`
	// Highest is the highest fence the sink had accepted for the election
	// when the write arrived.
	Highest uint64 `json:"hi"`
}

// EventRecord is an election.Event as it crosses a process boundary: the
// fields the history checker reads, the error as its text.
type EventRecord struct {
	Kind        election.EventKind  `json:"kind"`
	State       election.State      `json:"state"`
	Time        time.Time           `json:"time"`
	Election    string              `json:"e,omitempty"`
	Candidate   string              `json:"c,omitempty"`
	Fence       uint64              `json:"f,omitempty"`
	LeaderID    string              `json:"lid,omitempty"`
	LeaderFence uint64              `json:"lf,omitempty"`
	HasLeader   bool                `json:"hl,omitempty"`
	Count       int                 `json:"n,omitempty"`
	Reason      election.LossReason `json:"reason,omitempty"`
	Overrun     time.Duration       `json:"overrun,omitempty"`
	Err         string              `json:"err,omitempty"`
}

// NewEventRecord copies ev for the wire. The owner token's prefix is left
// out: it has no use in the test.
func NewEventRecord(ev election.Event) *EventRecord {
	r := &EventRecord{
		Kind: ev.Kind, State: ev.State, Time: ev.Time, Election: ev.Election, Candidate: ev.Candidate,
		Fence: ev.Fence, Count: ev.Count, Reason: ev.Reason, Overrun: ev.Overrun,
	}
	if ev.Leader != nil {
		r.HasLeader, r.LeaderID, r.LeaderFence = true, ev.Leader.ID, ev.Leader.Fence
	}
	if ev.Err != nil {
		r.Err = ev.Err.Error()
	}
	return r
}

// Event returns the election.Event r was made from (the error as a plain
// error with the same text).
func (r *EventRecord) Event() election.Event {
	ev := election.Event{
		Kind: r.Kind, State: r.State, Time: r.Time, Election: r.Election, Candidate: r.Candidate,
		Fence: r.Fence, Count: r.Count, Reason: r.Reason, Overrun: r.Overrun,
	}
	if r.HasLeader {
		ev.Leader = &election.Leader{Election: r.Election, ID: r.LeaderID, Fence: r.LeaderFence}
	}
	if r.Err != "" {
		ev.Err = errors.New(r.Err)
	}
	return ev
}
