// Package electionprom exports the events of an [election.Elector] as
// Prometheus metrics: the operational checklist of the lease pattern
// (acquire and renew success rates, lease losses, contention per key,
// leader changes, store latency) for every backend alike.
//
// Create one [Metrics] per process and registry with [New], and pass
// [Metrics.OnEvent] as (or, through [election.TeeEvents], alongside)
// [election.Config.OnEvent]. The core does not import this package:
// programs that do not want Prometheus do not link it.
//
// # Metrics
//
// With the default namespace "election":
//
//	election_claim_attempts_total{election,outcome}      counter    outcome: success, taken, error
//	election_claim_duration_seconds{election}            histogram  store time of claims that reached the store
//	election_renewals_total{outcome}                     counter    outcome: success, failure (one per session renewal)
//	election_renew_duration_seconds                      histogram  store time of session renewals, failed ones included
//	election_leadership_losses_total{election,reason}    counter    reason: deadline, not-owner, session-expired, superseded, other
//	election_leader_changes_total{election}              counter    new terms seen by this process
//	election_watch_failures_total{election}              counter    watches broken and re-established
//	election_is_leader{election,candidate}               gauge      1 while the candidate leads (leading or uncertain), else 0
//	election_candidate_state{election,candidate,state}   gauge      1 for the candidate's current state, 0 for the others
//	election_handler_overruns_total{election}            counter    terms whose handlers still ran past the term's deadline
//	election_handler_overrun_seconds{election}           histogram  how long past the deadline such handlers returned
//
// election_is_leader and election_candidate_state follow the State every
// candidate event carries (the state the event left the candidate in), so
// they are right whatever the event. A candidate leads in the states
// leading and uncertain: uncertain means its renewals fail and it leads
// until its term's deadline unless one succeeds. The state label takes the
// names of [election.State] (idle, campaigning, claiming, queued, leading,
// uncertain, stepping-down, releasing, resigned, stopped), or "other" for
// a state this package does not know.
//
// A handler overrun means that handlers of an ended term ignored their
// cancelled context past the term's deadline, when the store may expire
// the claim and elect another leader: from then on only fencing keeps
// their writes from overlapping the next leader's. Any increase of
// election_handler_overruns_total deserves a page; the histogram, observed
// when the handlers finally return, shows how late they were.
//
// Contention per election is the rate of claims that found the election
// held: rate(election_claim_attempts_total{outcome="taken"}[5m]).
//
// # Cardinality
//
// Labels are election names and candidate IDs only, plus fixed sets of
// outcomes, reasons and states; never tokens, fences, leader IDs seen from
// elsewhere or error text. The number of series is therefore bounded by
// the elections this process campaigns in (and the candidates it creates)
// times a small constant: about 15 series per election (plus histogram
// buckets) and 11 per candidate (is_leader and one per state). A stopped
// candidate keeps its series (state "stopped"), so that the last word
// about it stays visible. Renewals are per session, not per election, so
// their series do not grow with the number of elections. Give candidates
// stable IDs (a pod or host name): the default ID has a random suffix, so
// each restart of a process exports fresh election_is_leader and
// election_candidate_state series.
package electionprom

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/electionkit/election"
)

// Label values of the outcome, reason and state labels (the other states
// are named by [election.State.String]).
const (
	OutcomeSuccess = "success"
	OutcomeTaken   = "taken"
	OutcomeError   = "error"
	OutcomeFailure = "failure"
	// ReasonOther stands for a loss reason this package does not know,
	// so that a new reason in the core cannot grow the label set.
	ReasonOther = "other"
	// StateOther stands, in election_candidate_state, for a state this
	// package does not know, for the same reason.
	StateOther = "other"
)

var knownStates = []election.State{
	election.StateIdle, election.StateCampaigning, election.StateClaiming, election.StateQueued,
	election.StateLeading, election.StateUncertain, election.StateSteppingDown, election.StateReleasing,
	election.StateResigned, election.StateStopped,
}

var knownReasons = []election.LossReason{
	election.LossDeadline, election.LossNotOwner, election.LossSessionExpired, election.LossSuperseded,
}

// DefaultBuckets are the latency buckets, in seconds, of both latency
// histograms unless an [Option] replaces them: 1ms to about 8s, doubling,
// which covers store round trips from a local memory store to a renewal
// that times out after the default RenewInterval (TTL/3).
var DefaultBuckets = prometheus.ExponentialBuckets(0.001, 2, 14)

// DefaultOverrunBuckets are the buckets, in seconds, of
// election_handler_overrun_seconds unless [WithOverrunBuckets] replaces
// them: 10ms to about 164s, doubling. The core reports an overrun from
// DriftMargin/2 past the deadline on (500ms with a 10s TTL), and a handler
// that ignores its context can run on for minutes.
var DefaultOverrunBuckets = prometheus.ExponentialBuckets(0.01, 2, 15)

// Metrics is a [prometheus.Collector] for the events of one or more
// electors. Its OnEvent method is safe for concurrent use and never blocks
// on I/O. Create it with [New].
type Metrics struct {
	claims        *prometheus.CounterVec
	claimLatency  *prometheus.HistogramVec
	renewals      *prometheus.CounterVec
	renewLatency  prometheus.Histogram
	losses        *prometheus.CounterVec
	changes       *prometheus.CounterVec
	watchFailures *prometheus.CounterVec
	isLeader      *prometheus.GaugeVec
	state         *prometheus.GaugeVec
	overruns      *prometheus.CounterVec
	overrunTime   *prometheus.HistogramVec

	mu sync.Mutex
	// lastFence is the newest term seen per election, so that a term seen
	// by several candidates or through several events counts once.
	lastFence map[string]uint64
	// states is the state label set to 1 per candidate.
	states map[candidateKey]string
}

type candidateKey struct{ election, candidate string }

var _ prometheus.Collector = (*Metrics)(nil)

// Option configures [New].
type Option func(*options)

type options struct {
	namespace      string
	constLabels    prometheus.Labels
	claimBuckets   []float64
	renewBuckets   []float64
	overrunBuckets []float64
}

// WithNamespace replaces the metric name prefix "election". An empty
// namespace drops the prefix. A namespace that makes invalid metric names
// fails [New].
func WithNamespace(ns string) Option { return func(o *options) { o.namespace = ns } }

// WithConstLabels adds labels with fixed values to every metric. Several
// Metrics can share one registry if each has the same const label names
// with distinct values (shard="1", shard="2"). A label name used by the
// metrics themselves, or "le", fails [New].
func WithConstLabels(l prometheus.Labels) Option {
	return func(o *options) {
		o.constLabels = make(prometheus.Labels, len(l))
		for k, v := range l {
			o.constLabels[k] = v
		}
	}
}

// WithClaimBuckets replaces the buckets (in seconds, strictly increasing)
// of election_claim_duration_seconds.
func WithClaimBuckets(b ...float64) Option {
	return func(o *options) { o.claimBuckets = append([]float64(nil), b...) }
}

// WithRenewBuckets replaces the buckets (in seconds, strictly increasing)
// of election_renew_duration_seconds.
func WithRenewBuckets(b ...float64) Option {
	return func(o *options) { o.renewBuckets = append([]float64(nil), b...) }
}

// WithOverrunBuckets replaces the buckets (in seconds, strictly
// increasing) of election_handler_overrun_seconds.
func WithOverrunBuckets(b ...float64) Option {
	return func(o *options) { o.overrunBuckets = append([]float64(nil), b...) }
}

// New creates the metrics and registers them with reg as one collector.
// It returns an error, never panics: an error wrapping
// [election.ErrInvalidArgument] for a nil reg or bad options (every
// problem at once), and the registry's error, wrapped, when registration
// fails (a prometheus.AlreadyRegisteredError, found with errors.As, if
// reg already holds metrics of the same names and labels). Nothing is
// registered when New fails. Unregister with reg.Unregister(m).
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	o := options{namespace: "election", claimBuckets: DefaultBuckets, renewBuckets: DefaultBuckets, overrunBuckets: DefaultOverrunBuckets}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if err := o.validate(reg); err != nil {
		return nil, err
	}
	m := newMetrics(o)
	if err := reg.Register(m); err != nil {
		return nil, fmt.Errorf("electionprom: register metrics: %w", err)
	}
	// Series that exist from the start make increase() see their first
	// increment.
	for _, outcome := range []string{OutcomeSuccess, OutcomeFailure} {
		m.renewals.WithLabelValues(outcome)
	}
	return m, nil
}

func (o options) validate(reg prometheus.Registerer) error {
	var errs []error
	if reg == nil {
		errs = append(errs, invalid("registerer", "nil (use prometheus.NewRegistry() or prometheus.DefaultRegisterer)"))
	}
	if _, ok := o.constLabels["le"]; ok {
		errs = append(errs, invalid("const labels", `"le" is reserved for histogram buckets`))
	}
	for _, b := range []struct {
		name    string
		buckets []float64
	}{{"claim buckets", o.claimBuckets}, {"renew buckets", o.renewBuckets}, {"overrun buckets", o.overrunBuckets}} {
		if err := checkBuckets(b.buckets); err != nil {
			errs = append(errs, invalid(b.name, "%v", err))
		}
	}
	return errors.Join(errs...)
}

func checkBuckets(b []float64) error {
	if len(b) == 0 {
		return errors.New("empty")
	}
	for i, v := range b {
		if math.IsNaN(v) {
			return fmt.Errorf("bucket %d is NaN", i)
		}
		if i > 0 && v <= b[i-1] {
			return fmt.Errorf("%v is not above %v: buckets must increase strictly", v, b[i-1])
		}
	}
	return nil
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: electionprom: %s: %s", election.ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}

func newMetrics(o options) *Metrics {
	ns, cl := o.namespace, o.constLabels
	return &Metrics{
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "claim_attempts_total", ConstLabels: cl,
			Help: "Claim (acquire) attempts by outcome: success, taken (held by another candidate: contention; on stores with a line, the claim waits in it and a later term from it adds nothing here) or error.",
		}, []string{"election", "outcome"}),
		claimLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "claim_duration_seconds", ConstLabels: cl, Buckets: o.claimBuckets,
			Help: "Store time of claims that reached the store, whatever their outcome.",
		}, []string{"election"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "renewals_total", ConstLabels: cl,
			Help: "Session renewals by outcome: success (the store answered) or failure. One renewal covers every claim of an elector.",
		}, []string{"outcome"}),
		renewLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "renew_duration_seconds", ConstLabels: cl, Buckets: o.renewBuckets,
			Help: "Store time of session renewals, failed ones included.",
		}),
		losses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "leadership_losses_total", ConstLabels: cl,
			Help: "Leadership (lease) lost without a release, by reason: deadline, not-owner, session-expired, superseded, other.",
		}, []string{"election", "reason"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "leader_changes_total", ConstLabels: cl,
			Help: "New terms (leaders) of the election seen by this process, its own included; the first leader seen at start-up is not a change.",
		}, []string{"election"}),
		watchFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "watch_failures_total", ConstLabels: cl,
			Help: "Watches of the election that failed and were re-established.",
		}, []string{"election"}),
		isLeader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "is_leader", ConstLabels: cl,
			Help: "1 while the candidate leads the election (state leading or uncertain), else 0.",
		}, []string{"election", "candidate"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "candidate_state", ConstLabels: cl,
			Help: "1 for the candidate's current state, 0 for the others: idle, campaigning, claiming, queued, leading, uncertain (leading, renewals failing), stepping-down, releasing, resigned, stopped, other.",
		}, []string{"election", "candidate", "state"}),
		overruns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "handler_overruns_total", ConstLabels: cl,
			Help: "Terms whose handlers still ran past the term's deadline, when the store may elect another leader and only fencing protects their writes.",
		}, []string{"election"}),
		overrunTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "handler_overrun_seconds", ConstLabels: cl, Buckets: o.overrunBuckets,
			Help: "How long past the term's deadline the handlers of a term returned, for terms whose handlers returned late.",
		}, []string{"election"}),
		lastFence: map[string]uint64{},
		states:    map[candidateKey]string{},
	}
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.claims, m.claimLatency, m.renewals, m.renewLatency, m.losses, m.changes,
		m.watchFailures, m.isLeader, m.state, m.overruns, m.overrunTime}
}

// Describe implements [prometheus.Collector].
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements [prometheus.Collector].
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}
