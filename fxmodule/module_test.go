package fxmodule_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/electionkit/election"
	_ "github.com/electionkit/election/backends/memory"
	"github.com/electionkit/election/fxmodule"
)

const ttl = 5 * time.Second

// storeURL names an in-process store of its own for each test, shared by
// every app of the test.
func storeURL(t *testing.T) string {
	return fmt.Sprintf("memory://%s?ttl=%v", strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()), ttl)
}

// TestHandoverBetweenApps runs two apps against one store: the first
// leads; stopping it hands over to the second well before the TTL, and the
// first app's jobs of an election have returned, their context cancelled,
// before the second's jobs of that election start.
func TestHandoverBetweenApps(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tl := newTimeline()
	url := storeURL(t)

	appOpts := func(name string, l **fxmodule.Leadership) fx.Option {
		return fx.Options(
			fx.Supply(election.Settings{URL: url, ID: name}),
			fxmodule.Module,
			fxmodule.AsJob("reaper", tl.job(name, "reaper-1")),
			fxmodule.AsJob("reaper", tl.job(name, "reaper-2")),
			fxmodule.AsJob("indexer", tl.job(name, "indexer")),
			fx.Populate(l),
		)
	}
	var la, lb *fxmodule.Leadership
	appA := fxtest.New(t, appOpts("a", &la))
	appB := fxtest.New(t, appOpts("b", &lb))

	appA.RequireStart()
	// Start makes the first claim attempt: a leads as soon as it returns.
	if !la.IsLeader("reaper") || !la.IsLeader("indexer") {
		t.Fatalf("a does not lead after start: reaper %v, indexer %v", la.IsLeader("reaper"), la.IsLeader("indexer"))
	}
	appB.RequireStart()
	if lb.IsLeader("reaper") || lb.IsLeader("indexer") {
		t.Fatal("b leads while a does")
	}
	if l, ok := lb.Leader("reaper"); !ok || l.ID != "a" {
		t.Errorf("b sees leader %+v, %v; want a", l, ok)
	}
	tl.waitStarts(t, "a", 3)
	if n := tl.count("b", "start"); n != 0 {
		t.Fatalf("%d jobs of b started while a leads", n)
	}

	stopped := time.Now()
	appA.RequireStop()
	tl.waitStarts(t, "b", 3)
	handover := time.Since(stopped)
	t.Logf("handover took %v (TTL %v)", handover, ttl)
	if handover >= ttl/2 {
		t.Errorf("handover took %v, want well under the TTL %v (release, not expiry)", handover, ttl)
	}
	if !lb.IsLeader("reaper") || !lb.IsLeader("indexer") {
		t.Error("b does not lead after a stopped")
	}
	if la.IsLeader("reaper") {
		t.Error("a still leads after it stopped")
	}

	for _, e := range []string{"reaper", "indexer"} {
		aReturns := tl.marks("a", "return", e)
		bStarts := tl.marks("b", "start", e)
		if len(aReturns) == 0 || len(bStarts) == 0 {
			t.Fatalf("%s: a returned %d jobs, b started %d", e, len(aReturns), len(bStarts))
		}
		for _, r := range aReturns {
			if !errors.Is(r.ctxErr, context.Canceled) {
				t.Errorf("%s: a's job %s returned with ctx error %v, want context.Canceled", e, r.job, r.ctxErr)
			}
			for _, s := range bStarts {
				if r.seq > s.seq {
					t.Errorf("%s: b's job %s started (#%d) before a's job %s returned (#%d)", e, s.job, s.seq, r.job, r.seq)
				}
				if s.fence <= r.fence {
					t.Errorf("%s: b's fence %d not above a's %d", e, s.fence, r.fence)
				}
			}
		}
	}
	appB.RequireStop()
	if n := tl.count("b", "return"); n != 3 {
		t.Errorf("%d of b's 3 jobs returned on stop", n)
	}
}

func TestBadSettingsFailStart(t *testing.T) {
	cases := []struct {
		name     string
		settings *election.Settings
		env      map[string]string
		want     string // in the error text
	}{
		{name: "missing URL", settings: &election.Settings{}, want: "ELECTION_URL"},
		{name: "no settings at all", want: "no backend URL"},
		{name: "unknown scheme", settings: &election.Settings{URL: "nosuch://host"}, want: `unknown scheme "nosuch"`},
		{name: "bad duration in URL", settings: &election.Settings{URL: "memory://bad?ttl=soon"}, want: "url ttl"},
		{name: "bad duration in env", settings: &election.Settings{URL: "memory://bad"}, env: map[string]string{"ELECTION_TTL": "soon"}, want: "ELECTION_TTL"},
		{name: "renew interval not below TTL", settings: &election.Settings{URL: "memory://bad", TTL: election.Duration(time.Second), RenewInterval: election.Duration(time.Second)}, want: "RenewInterval"},
		{name: "bad backend option", settings: &election.Settings{URL: "memory://bad?pool=3"}, want: "pool"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			opts := []fx.Option{fx.NopLogger, fxmodule.Module, fxmodule.AsJob("reaper", func(context.Context, election.Term) {})}
			if tc.settings != nil {
				opts = append(opts, fx.Supply(*tc.settings))
			}
			app := fx.New(opts...)
			err := app.Err()
			if !errors.Is(err, election.ErrInvalidArgument) {
				t.Fatalf("app error %v, want one wrapping ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("app error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestBadJobsFailStart(t *testing.T) {
	cases := []struct {
		name string
		opt  fx.Option
		want []string
	}{
		{name: "nil handler", opt: fxmodule.AsJob("reaper", nil), want: []string{"nil handler"}},
		{name: "bad names reported together", opt: fx.Options(
			fxmodule.Campaign(""),
			fxmodule.Campaign("bad\x00name"),
			fx.Provide(func() fxmodule.JobResult { return fxmodule.JobResult{Job: fxmodule.Job{Election: "no-run"}} }),
		), want: []string{"empty election name", `"no-run" has a nil Run`, "control character"}},
		{name: "control character", opt: fxmodule.Campaign("bad\x00name"), want: []string{"control character"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app := fx.New(fx.NopLogger, fx.Supply(election.Settings{URL: "memory://"}), fxmodule.Module, tc.opt)
			err := app.Err()
			if !errors.Is(err, election.ErrInvalidArgument) {
				t.Fatalf("app error %v, want one wrapping ErrInvalidArgument", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("app error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestEnvOverridesSettings(t *testing.T) {
	t.Setenv("ELECTION_URL", storeURL(t))
	t.Setenv("ELECTION_ID", "from-env")
	var l *fxmodule.Leadership
	app := fxtest.New(t,
		fx.Supply(election.Settings{URL: "nosuch://ignored", ID: "from-settings"}),
		fxmodule.Module,
		fxmodule.Campaign("reaper"),
		fx.Populate(&l),
	)
	app.RequireStart()
	defer app.RequireStop()
	term, ok := l.Term("reaper")
	if !ok || term.ID != "from-env" {
		t.Errorf("term %+v, %v: want led by from-env", term, ok)
	}
}

// TestLeadership checks the questions a user can ask, on a leader and on a
// follower, and that jobs from constructors (JobResult) run.
func TestLeadership(t *testing.T) {
	url := storeURL(t)
	ran := make(chan election.Term, 1)
	var leader, follower *fxmodule.Leadership
	var el *election.Elector
	appA := fxtest.New(t,
		fx.Supply(election.Settings{URL: url, ID: "a", Metadata: map[string]string{"addr": "10.0.0.1:8080"}}),
		fxmodule.Module,
		fx.Provide(func() fxmodule.JobResult {
			return fxmodule.JobResult{Job: fxmodule.Job{Election: "reaper", Run: func(ctx context.Context, t election.Term) {
				ran <- t
				<-ctx.Done()
			}}}
		}),
		fxmodule.Campaign("indexer"),
		fx.Populate(&leader, &el),
	)
	appB := fxtest.New(t,
		fx.Supply(election.Settings{URL: url, ID: "b"}),
		fxmodule.Module,
		fxmodule.Campaign("reaper"),
		fx.Populate(&follower),
	)
	appA.RequireStart()
	defer appA.RequireStop()
	appB.RequireStart()
	defer appB.RequireStop()

	select {
	case term := <-ran:
		if term.Election != "reaper" || term.ID != "a" || term.Fence == 0 {
			t.Errorf("job got term %+v", term)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the JobResult job did not run")
	}
	if got := leader.Elections(); len(got) != 2 || got[0] != "indexer" || got[1] != "reaper" {
		t.Errorf("Elections() = %q", got)
	}
	if el == nil || el.Config().TTL != ttl {
		t.Errorf("elector %v: want one with the URL's TTL %v", el, ttl)
	}

	called := false
	err := leader.RunIfLeader(context.Background(), "reaper", func(ctx context.Context, term election.Term) error {
		called = true
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nil
	})
	if err != nil || !called {
		t.Errorf("leader RunIfLeader = %v, called %v", err, called)
	}
	err = follower.RunIfLeader(context.Background(), "reaper", func(context.Context, election.Term) error {
		t.Error("fn called on a follower")
		return nil
	})
	if !errors.Is(err, election.ErrNotLeader) {
		t.Errorf("follower RunIfLeader = %v, want ErrNotLeader", err)
	}
	err = leader.RunIfLeader(context.Background(), "reaperr", func(context.Context, election.Term) error { return nil })
	if !errors.Is(err, election.ErrInvalidArgument) {
		t.Errorf("RunIfLeader on an unknown election = %v, want ErrInvalidArgument", err)
	}
	if leader.IsLeader("reaperr") {
		t.Error("IsLeader true for an unknown election")
	}
	if l, ok := follower.Leader("reaper"); !ok || l.ID != "a" || l.Metadata["addr"] != "10.0.0.1:8080" {
		t.Errorf("follower sees leader %+v, %v", l, ok)
	}
	if _, ok := follower.Term("reaper"); ok {
		t.Error("follower has a term")
	}
	if c, ok := leader.Candidate("indexer"); !ok || !c.IsLeader() {
		t.Error("Candidate(indexer) missing or not leading")
	}
}

// TestObservability checks that events reach the graph's logger and
// registry, and that the metrics are unregistered on stop.
func TestObservability(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	reg := prometheus.NewRegistry()
	var l *fxmodule.Leadership
	app := fxtest.New(t,
		fx.Supply(election.Settings{URL: storeURL(t), ID: "a"}),
		fx.Supply(zap.New(core)),
		fx.Supply(fx.Annotate(reg, fx.As(new(prometheus.Registerer)))),
		fxmodule.Module,
		fxmodule.Campaign("reaper"),
		fx.Populate(&l),
	)
	app.RequireStart()
	if !l.IsLeader("reaper") {
		t.Fatal("not leading after start")
	}
	// Events reach the logger and then the metrics just after the fact,
	// from the elector's own goroutine: wait for them.
	const isLeader = `
# HELP election_is_leader 1 while the candidate leads the election (state leading or uncertain), else 0.
# TYPE election_is_leader gauge
election_is_leader{candidate="a",election="reaper"} 1
`
	var gatherErr error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		gatherErr = testutil.GatherAndCompare(reg, strings.NewReader(isLeader), "election_is_leader")
		if gatherErr == nil || time.Now().After(deadline) {
			break
		}
	}
	if gatherErr != nil {
		t.Error(gatherErr)
	}
	claimed := logs.FilterMessage("election: leadership claimed").All()
	if len(claimed) != 1 || claimed[0].ContextMap()["election"] != "reaper" {
		t.Errorf("claimed log entries: %v", claimed)
	}
	app.RequireStop()
	if logs.FilterMessage("election: leadership released").Len() != 1 {
		t.Error("no release logged on stop")
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Errorf("after stop the registry holds %d series (err %v), want 0", n, err)
	}
}

// TestWithoutObservability: no logger and no registry in the graph is
// fine.
func TestWithoutObservability(t *testing.T) {
	var l *fxmodule.Leadership
	app := fxtest.New(t, fx.Supply(election.Settings{URL: storeURL(t)}), fxmodule.Module, fxmodule.Campaign("reaper"), fx.Populate(&l))
	app.RequireStart()
	defer app.RequireStop()
	if !l.IsLeader("reaper") {
		t.Error("not leading after start")
	}
}

// timeline records job starts and returns with a global sequence number,
// so that ordering across apps is exact, not timed.
type timeline struct {
	mu     sync.Mutex
	seq    int
	all    []mark
	notify chan struct{}
}

type mark struct {
	app, job, what, election string
	seq                      int
	fence                    uint64
	ctxErr                   error
}

func newTimeline() *timeline { return &timeline{notify: make(chan struct{}, 1)} }

func (tl *timeline) job(app, name string) election.Handler {
	return func(ctx context.Context, term election.Term) {
		tl.add(mark{app: app, job: name, what: "start", election: term.Election, fence: term.Fence})
		<-ctx.Done()
		tl.add(mark{app: app, job: name, what: "return", election: term.Election, fence: term.Fence, ctxErr: ctx.Err()})
	}
}

func (tl *timeline) add(m mark) {
	tl.mu.Lock()
	tl.seq++
	m.seq = tl.seq
	tl.all = append(tl.all, m)
	tl.mu.Unlock()
	select {
	case tl.notify <- struct{}{}:
	default:
	}
}

func (tl *timeline) marks(app, what, election string) []mark {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []mark
	for _, m := range tl.all {
		if m.app == app && m.what == what && (election == "" || m.election == election) {
			out = append(out, m)
		}
	}
	return out
}

func (tl *timeline) count(app, what string) int { return len(tl.marks(app, what, "")) }

func (tl *timeline) waitStarts(t *testing.T, app string, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for tl.count(app, "start") < n {
		select {
		case <-tl.notify:
		case <-timeout:
			t.Fatalf("%d of %s's %d jobs started within 10s", tl.count(app, "start"), app, n)
		}
	}
}
