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
//	election_claim_attempts_total{election,outcome}  counter    outcome: success, taken, error
//	election_claim_duration_seconds{election}         histogram  store time of claims that reached the store
//	election_renewals_total{outcome}                  counter    outcome: success, failure (one per session renewal)
//	election_renew_duration_seconds                   histogram  store time of session renewals, failed ones included
//	election_leadership_losses_total{election,reason} counter    reason: deadline, not-owner, session-expired, superseded, other
//	election_leader_changes_total{election}           counter    new terms seen by this process
//	election_watch_failures_total{election}           counter    watches broken and re-established
//	election_is_leader{election,candidate}            gauge      1 while the candidate leads, else 0
//
// Contention per election is the rate of claims that found the election
// held: rate(election_claim_attempts_total{outcome="taken"}[5m]).
//
// # Cardinality
//
// Labels are election names and candidate IDs only, plus fixed sets of
// outcomes and reasons; never tokens, fences, leader IDs seen from
// elsewhere or error text. The number of series is therefore bounded by
// the elections this process campaigns in (and the candidates it creates)
// times a small constant. Renewals are per session, not per election, so
// their series do not grow with the number of elections. Give candidates
// stable IDs (a pod or host name): the default ID has a random suffix, so
// each restart of a process exports a fresh election_is_leader series.
package electionprom

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/electionkit/election"
)

// Label values of the outcome and reason labels.
const (
	OutcomeSuccess = "success"
	OutcomeTaken   = "taken"
	OutcomeError   = "error"
	OutcomeFailure = "failure"
	// ReasonOther stands for a loss reason this package does not know,
	// so that a new reason in the core cannot grow the label set.
	ReasonOther = "other"
)

var knownReasons = []election.LossReason{
	election.LossDeadline, election.LossNotOwner, election.LossSessionExpired, election.LossSuperseded,
}

// DefaultBuckets are the latency buckets, in seconds, of both histograms
// unless an [Option] replaces them: 1ms to about 8s, doubling, which
// covers store round trips from a local memory store to a renewal that
// times out after the default RenewInterval (TTL/3).
var DefaultBuckets = prometheus.ExponentialBuckets(0.001, 2, 14)

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

	mu sync.Mutex
	// lastFence is the newest term seen per election, so that a term seen
	// by several candidates or through several events counts once.
	lastFence map[string]uint64
}

var _ prometheus.Collector = (*Metrics)(nil)

// Option configures [New].
type Option func(*options)

type options struct {
	namespace    string
	constLabels  prometheus.Labels
	claimBuckets []float64
	renewBuckets []float64
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

// New creates the metrics and registers them with reg as one collector.
// It returns an error, never panics: an error wrapping
// [election.ErrInvalidArgument] for a nil reg or bad options (every
// problem at once), and the registry's error, wrapped, when registration
// fails (a prometheus.AlreadyRegisteredError, found with errors.As, if
// reg already holds metrics of the same names and labels). Nothing is
// registered when New fails. Unregister with reg.Unregister(m).
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	o := options{namespace: "election", claimBuckets: DefaultBuckets, renewBuckets: DefaultBuckets}
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
	}{{"claim buckets", o.claimBuckets}, {"renew buckets", o.renewBuckets}} {
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
			Help: "1 while the candidate leads the election, else 0.",
		}, []string{"election", "candidate"}),
		lastFence: map[string]uint64{},
	}
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.claims, m.claimLatency, m.renewals, m.renewLatency, m.losses, m.changes, m.watchFailures, m.isLeader}
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
