// Package health serves liveness and readiness checks for an elector and
// its candidates over HTTP, with a JSON body for people and dashboards.
//
//	mux.Handle("/healthz", health.Liveness(el))
//	mux.Handle("/readyz", health.Readiness(el, health.Options{Candidate: c, Ready: health.WhenLeading}))
//
// Liveness fails (503) when the elector's renewal loop is stuck: a session
// is open and the loop has finished no step for longer than TTL + OpTimeout
// (as client-go's HealthzAdaptor detects a stuck leader-election loop).
// It is defined on the elector, not on a candidate, and does no I/O: a
// store outage does not fail it (restarting would not help; readiness
// reports it). After Close it fails.
//
// Readiness answers one of two questions (Options.Ready): is this process
// the leader (WhenLeading, for a service where only the leader takes
// traffic), or is it in touch with the store (WhenConnected: the session's
// last renewal is within its deadline). Options.UncertainIsReady says how
// the Uncertain state (renewals failing, deadline not reached) counts; by
// default it does not.
//
// The body shows the leader's ID and metadata: serve the checks where only
// your platform reads them if the metadata is not for everyone.
package health

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/electionkit/election"
)

// Ready selects what readiness means.
type Ready int

const (
	// WhenLeading: ready while Options.Candidate leads.
	WhenLeading Ready = iota
	// WhenConnected: ready while the elector's session is renewed within
	// its deadline; with a Candidate, also while it is not stopped.
	WhenConnected
)

// Options configures Readiness.
type Options struct {
	// Candidate is the candidate whose state, leader and fence the body
	// shows; required for WhenLeading.
	Candidate *election.Candidate
	// Ready selects the question readiness answers. Default WhenLeading.
	Ready Ready
	// UncertainIsReady counts a leader whose renewals fail (but whose
	// deadline has not passed) as ready: it still leads. Off by default,
	// so that a load balancer moves traffic away as soon as the leader
	// may be cut off.
	UncertainIsReady bool
	// Now is the clock the body's ages are measured on; it must be the
	// elector's (Config.Clock). Default time.Now.
	Now func() time.Time
}

// Report is the JSON body of both checks.
type Report struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
	// State is the candidate's state ("leading", "uncertain", ...).
	State string `json:"state,omitempty"`
	// Leader is the election's holder as the candidate last saw it.
	Leader *LeaderInfo `json:"leader,omitempty"`
	// Fence is the candidate's own term's fence while it leads.
	Fence uint64 `json:"fence,omitempty"`
	// Session reports an open store session.
	Session bool `json:"session"`
	// LastRenewAgeMillis is how long ago the session's last successful
	// renewal was sent; absent without a session.
	LastRenewAgeMillis *int64 `json:"last_renew_age_ms,omitempty"`
	// Stalled reports a stuck renewal loop.
	Stalled bool `json:"stalled,omitempty"`
}

// LeaderInfo is the holder shown in a Report.
type LeaderInfo struct {
	ID       string            `json:"id"`
	Fence    uint64            `json:"fence"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Liveness returns a handler that answers 200 while el's renewal loop
// makes progress and 503 when it is stalled or el is closed.
func Liveness(el *election.Elector) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := el.Status()
		rep := report(st, snapshot{}, time.Now)
		switch {
		case st.Closed:
			rep.Reason = "the elector is closed"
		case st.Stalled:
			rep.Reason = "the renewal loop has made no progress for longer than TTL + OpTimeout"
		default:
			rep.OK = true
		}
		write(w, rep)
	})
}

// Readiness returns a handler that answers 200 when ready as opts says,
// 503 otherwise. A WhenLeading check without a Candidate is never ready
// and says so.
func Readiness(el *election.Elector, opts Options) http.Handler {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := el.Status()
		snap := take(opts.Candidate)
		rep := report(st, snap, now)
		rep.OK, rep.Reason = ready(st, snap, opts, now())
		write(w, rep)
	})
}

// snapshot is what one check reads of a candidate, once, so that the body
// agrees with the answer. Leading needs both the published state (Leading
// or Uncertain) and a valid term (Candidate.Term checks the deadline): the
// state lags a term that has just ended (its deadline passed, its context
// cancelled) or not yet started, and neither is ready.
type snapshot struct {
	c      *election.Candidate
	state  election.State
	term   election.Term
	leads  bool
	leader *election.Leader
}

func take(c *election.Candidate) snapshot {
	if c == nil {
		return snapshot{}
	}
	s := snapshot{c: c, state: c.State()}
	s.term, s.leads = c.Term()
	if l, ok := c.Leader(); ok {
		s.leader = &l
	}
	return s
}

func ready(st election.Status, snap snapshot, opts Options, now time.Time) (bool, string) {
	if st.Closed {
		return false, "the elector is closed"
	}
	if snap.state == election.StateUncertain && !opts.UncertainIsReady {
		return false, "uncertain: renewals are failing"
	}
	switch opts.Ready {
	case WhenLeading:
		switch {
		case snap.c == nil:
			return false, "no candidate to check (Options.Candidate)"
		case snap.leads && (snap.state == election.StateLeading || snap.state == election.StateUncertain):
			return true, ""
		default:
			return false, "not leading"
		}
	case WhenConnected:
		switch {
		case snap.c != nil && snap.state == election.StateStopped:
			return false, "the candidate has stopped"
		case !st.Session:
			return false, "no store session"
		case !now.Before(st.Deadline):
			return false, "the session's last renewal is past its deadline"
		default:
			return true, ""
		}
	default:
		return false, "unknown Options.Ready"
	}
}

func report(st election.Status, snap snapshot, now func() time.Time) Report {
	rep := Report{Session: st.Session, Stalled: st.Stalled}
	if st.Session {
		age := now().Sub(st.LastRenewal).Milliseconds()
		rep.LastRenewAgeMillis = &age
	}
	if snap.c == nil {
		return rep
	}
	rep.State = snap.state.String()
	if l := snap.leader; l != nil {
		rep.Leader = &LeaderInfo{ID: l.ID, Fence: l.Fence, Metadata: l.Metadata}
	}
	if snap.leads {
		rep.Fence = snap.term.Fence
	}
	return rep
}

func write(w http.ResponseWriter, rep Report) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if rep.OK {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(rep)
}
