package electionprom_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
	"github.com/electionkit/election/internal/eventrec"
	electionprom "github.com/electionkit/election/prometheus"
)

// process is one simulated process: its own client of the shared store,
// registry, metrics and elector.
type process struct {
	client *memory.Client
	reg    *prometheus.Registry
	m      *electionprom.Metrics
	el     *election.Elector
	cand   *election.Candidate
	rec    *eventrec.Recorder
}

func newProcess(t *testing.T, store *memory.Store, id string) *process {
	t.Helper()
	p := &process{client: store.NewClient(), reg: prometheus.NewRegistry(), rec: eventrec.New()}
	var err error
	if p.m, err = electionprom.New(p.reg); err != nil {
		t.Fatal(err)
	}
	p.el, err = election.New(p.client, election.Config{
		TTL:     time.Second,
		OnEvent: election.TeeEvents(p.m.OnEvent, p.rec.Record),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.el.Close(context.Background()) })
	if p.cand, err = p.el.NewCandidate(election.CandidateConfig{Name: "jobs", ID: id}); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRealEvents drives two processes through a claim, contention, a
// handover and a partition, and checks each one's metrics.
func TestRealEvents(t *testing.T) {
	ctx := context.Background()
	store := memory.NewStore()
	a := newProcess(t, store, "a")
	b := newProcess(t, store, "b")

	// a claims the vacant election.
	if err := a.cand.Start(ctx); err != nil {
		t.Fatal(err)
	}
	a.rec.Wait(t, election.EventClaimed, "a")
	want(t, a, "election_claim_attempts_total", labels{"election": "jobs", "outcome": "success"}, 1)
	want(t, a, "election_is_leader", labels{"election": "jobs", "candidate": "a"}, 1)
	want(t, a, "election_leader_changes_total", labels{"election": "jobs"}, 1)
	want(t, a, "election_claim_duration_seconds", labels{"election": "jobs"}, 1) // sample count

	// b finds it held: contention, and no leader change for b (the leader
	// it found at start-up is its baseline).
	if err := b.cand.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b.rec.Wait(t, election.EventClaimTaken, "b")
	if got := value(t, b, "election_claim_attempts_total", labels{"election": "jobs", "outcome": "taken"}); got < 1 {
		t.Errorf("b's taken claims = %v, want at least 1", got)
	}
	want(t, b, "election_claim_attempts_total", labels{"election": "jobs", "outcome": "success"}, 0)
	want(t, b, "election_is_leader", labels{"election": "jobs", "candidate": "b"}, 0)
	want(t, b, "election_leader_changes_total", labels{"election": "jobs"}, 0)

	// Handover: a stops and releases, b takes over.
	if err := a.cand.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// OnEvent runs in each elector's own goroutine, just after the fact.
	a.rec.Wait(t, election.EventReleased, "a")
	b.rec.Wait(t, election.EventClaimed, "b")
	want(t, a, "election_is_leader", labels{"election": "jobs", "candidate": "a"}, 0)
	want(t, b, "election_is_leader", labels{"election": "jobs", "candidate": "b"}, 1)
	want(t, b, "election_leader_changes_total", labels{"election": "jobs"}, 1)
	want(t, b, "election_leadership_losses_total", labels{"election": "jobs", "reason": "deadline"}, 0)
	// The memory store keeps a line: b waited in it, and a's release
	// elected it with no claim of b's own, so no claim is added.
	want(t, b, "election_claim_attempts_total", labels{"election": "jobs", "outcome": "success"}, 0)
	want(t, b, "election_claim_duration_seconds", labels{"election": "jobs"}, 1)
	// Renewed events are session-wide (no candidate): wait for one of b's.
	b.rec.Wait(t, election.EventRenewed, "")

	// Partition b from the store: renewals fail, b steps down at its
	// deadline, its watch breaks and its claims fail until healed.
	if err := b.client.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	b.rec.Wait(t, election.EventLost, "b")
	b.rec.Wait(t, election.EventClaimFailed, "b")
	want(t, b, "election_leadership_losses_total", labels{"election": "jobs", "reason": "deadline"}, 1)
	want(t, b, "election_leadership_losses_total", labels{"election": "jobs", "reason": "superseded"}, 0)
	want(t, b, "election_is_leader", labels{"election": "jobs", "candidate": "b"}, 0)
	if got := value(t, b, "election_renewals_total", labels{"outcome": "failure"}); got < 1 {
		t.Errorf("b's failed renewals = %v, want at least 1", got)
	}
	if got := value(t, b, "election_renewals_total", labels{"outcome": "success"}); got < 1 {
		t.Errorf("b's successful renewals = %v, want at least 1 (before the cut)", got)
	}
	if got := value(t, b, "election_renew_duration_seconds", nil); got < 2 {
		t.Errorf("b's renew latency samples = %v, want at least 2", got)
	}
	if got := value(t, b, "election_watch_failures_total", labels{"election": "jobs"}); got < 1 {
		t.Errorf("b's watch failures = %v, want at least 1", got)
	}
	if got := value(t, b, "election_claim_attempts_total", labels{"election": "jobs", "outcome": "error"}); got < 1 {
		t.Errorf("b's failed claims = %v, want at least 1", got)
	}
	if err := b.client.Heal(ctx); err != nil {
		t.Fatal(err)
	}

	// Only election and candidate names appear as label values, besides
	// the fixed outcome and reason sets.
	for _, p := range []*process{a, b} {
		for _, l := range labelValues(t, p) {
			switch l.name {
			case "election":
				if l.value != "jobs" {
					t.Errorf("election label %q", l.value)
				}
			case "candidate":
				if l.value != "a" && l.value != "b" {
					t.Errorf("candidate label %q", l.value)
				}
			case "state":
				known := false
				for _, st := range []string{"idle", "campaigning", "claiming", "queued", "leading", "uncertain",
					"stepping-down", "releasing", "resigned", "stopped"} {
					known = known || l.value == st
				}
				if !known {
					t.Errorf("state label %q", l.value)
				}
			case "outcome", "reason", "le":
			default:
				t.Errorf("unexpected label %s=%q", l.name, l.value)
			}
		}
	}
}

// A term seen by two candidates of one process, and again through a later
// event, is one leader change; unknown loss reasons map to "other".
func TestLeaderChangesCountTermsOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := electionprom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	leader := func(fence uint64) *election.Leader { return &election.Leader{Election: "e", ID: "x", Fence: fence} }
	m.OnEvent(election.Event{Kind: election.EventClaimTaken, Election: "e", Candidate: "c1", Leader: leader(5)})
	m.OnEvent(election.Event{Kind: election.EventLeaderChanged, Election: "e", Candidate: "c1", Leader: leader(5)})
	m.OnEvent(election.Event{Kind: election.EventClaimTaken, Election: "e", Candidate: "c2", Leader: leader(5)})
	const changesHeader = `
# HELP election_leader_changes_total New terms (leaders) of the election seen by this process, its own included; the first leader seen at start-up is not a change.
# TYPE election_leader_changes_total counter
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(changesHeader+`election_leader_changes_total{election="e"} 0
`), "election_leader_changes_total"); err != nil {
		t.Fatalf("after the baseline term: %v", err)
	}
	m.OnEvent(election.Event{Kind: election.EventLeaderChanged, Election: "e", Candidate: "c1", Leader: leader(9)})
	m.OnEvent(election.Event{Kind: election.EventLeaderChanged, Election: "e", Candidate: "c2", Leader: leader(9)})
	m.OnEvent(election.Event{Kind: election.EventLeaderChanged, Election: "e", Candidate: "c2"}) // vacancy
	m.OnEvent(election.Event{Kind: election.EventLeaderChanged, Election: "e", Candidate: "c1", Leader: leader(7)})
	m.OnEvent(election.Event{Kind: election.EventClaimed, Election: "e", Candidate: "c1", Fence: 12})
	m.OnEvent(election.Event{Kind: election.EventLost, Election: "e", Candidate: "c1", Reason: "cosmic-ray"})

	expected := changesHeader + `election_leader_changes_total{election="e"} 2
# HELP election_leadership_losses_total Leadership (lease) lost without a release, by reason: deadline, not-owner, session-expired, superseded, other.
# TYPE election_leadership_losses_total counter
election_leadership_losses_total{election="e",reason="deadline"} 0
election_leadership_losses_total{election="e",reason="not-owner"} 0
election_leadership_losses_total{election="e",reason="other"} 1
election_leadership_losses_total{election="e",reason="session-expired"} 0
election_leadership_losses_total{election="e",reason="superseded"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "election_leader_changes_total", "election_leadership_losses_total"); err != nil {
		t.Error(err)
	}
}

// A state the package does not know is exported as "other", so that a new
// state in the core cannot grow the label set; the candidate does not lead
// in it.
func TestUnknownStateIsOther(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := electionprom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.OnEvent(election.Event{Kind: election.EventClaimed, State: election.StateLeading, Election: "e", Candidate: "c", Fence: 1})
	m.OnEvent(election.Event{Kind: election.EventKind(99), State: election.State(42), Election: "e", Candidate: "c"})
	for name, want := range map[string]float64{electionprom.StateOther: 1, "leading": 0, "idle": 0} {
		if v := stateOf(t, reg, "e", "c", name); v != want {
			t.Errorf("election_candidate_state{state=%q} = %v, want %v", name, v, want)
		}
	}
	m.OnEvent(election.Event{Kind: election.EventStopped, State: election.StateStopped, Election: "e", Candidate: "c"})
	for name, want := range map[string]float64{"other": 0, "stopped": 1} {
		if v := stateOf(t, reg, "e", "c", name); v != want {
			t.Errorf("after the stop, election_candidate_state{state=%q} = %v, want %v", name, v, want)
		}
	}
}

func stateOf(t *testing.T, reg *prometheus.Registry, name, candidate, state string) float64 {
	t.Helper()
	v, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range v {
		if mf.GetName() != "election_candidate_state" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if got["election"] == name && got["candidate"] == candidate && got["state"] == state {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func TestNewErrors(t *testing.T) {
	if _, err := electionprom.New(nil); !errors.Is(err, election.ErrInvalidArgument) {
		t.Errorf("New(nil) = %v, want ErrInvalidArgument", err)
	}
	_, err := electionprom.New(prometheus.NewRegistry(),
		electionprom.WithClaimBuckets(1, 1),
		electionprom.WithRenewBuckets(),
		electionprom.WithOverrunBuckets(2, 1),
		electionprom.WithConstLabels(prometheus.Labels{"le": "x"}))
	if !errors.Is(err, election.ErrInvalidArgument) {
		t.Fatalf("bad options: %v, want ErrInvalidArgument", err)
	}
	for _, s := range []string{"claim buckets", "renew buckets", "overrun buckets", `"le"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}

	reg := prometheus.NewRegistry()
	if _, err := electionprom.New(reg); err != nil {
		t.Fatal(err)
	}
	var dup prometheus.AlreadyRegisteredError
	if _, err := electionprom.New(reg); !errors.As(err, &dup) {
		t.Errorf("second New on one registry = %v, want AlreadyRegisteredError", err)
	}
	// Two electors on one registry: the same const label names, distinct
	// values.
	shared := prometheus.NewRegistry()
	for _, shard := range []string{"1", "2"} {
		if _, err := electionprom.New(shared, electionprom.WithConstLabels(prometheus.Labels{"shard": shard})); err != nil {
			t.Errorf("New with shard=%s = %v, want nil", shard, err)
		}
	}
	if _, err := electionprom.New(prometheus.NewRegistry(), electionprom.WithNamespace("\xff")); err == nil {
		t.Error("invalid namespace registered without error")
	}
	if _, err := electionprom.New(prometheus.NewRegistry(), electionprom.WithConstLabels(prometheus.Labels{"election": "x"})); err == nil {
		t.Error("const label clashing with a variable label registered without error")
	}
	// A failed New registers nothing: the default names stay free.
	reg2 := prometheus.NewRegistry()
	if _, err := electionprom.New(reg2, electionprom.WithConstLabels(prometheus.Labels{"election": "x"})); err == nil {
		t.Fatal("want error")
	}
	if _, err := electionprom.New(reg2); err != nil {
		t.Errorf("New after a failed New = %v", err)
	}
}

func TestNilMetricsIgnoresEvents(t *testing.T) {
	var m *electionprom.Metrics
	m.OnEvent(election.Event{Kind: election.EventClaimed, Election: "e"}) // must not panic
}

type labels map[string]string

// value returns the value of the series of name whose labels include ls:
// a counter's or gauge's value, a histogram's sample count.
func value(t *testing.T, p *process, name string, ls labels) float64 {
	t.Helper()
	mfs, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range ls {
				if got[k] != v {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, ls)
	return 0
}

func want(t *testing.T, p *process, name string, ls labels, v float64) {
	t.Helper()
	if got := value(t, p, name, ls); got != v {
		t.Errorf("%s%v = %v, want %v", name, ls, got, v)
	}
}

type labelPair struct{ name, value string }

func labelValues(t *testing.T, p *process) []labelPair {
	t.Helper()
	mfs, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []labelPair
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				out = append(out, labelPair{lp.GetName(), lp.GetValue()})
			}
		}
	}
	return out
}
