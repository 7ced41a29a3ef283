package health_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
	"github.com/electionkit/election/health"
)

func get(t *testing.T, h http.Handler) (int, health.Report) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var rep health.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	if (rec.Code == http.StatusOK) != rep.OK {
		t.Fatalf("status %d with ok=%v in %s", rec.Code, rep.OK, rec.Body.String())
	}
	return rec.Code, rep
}

// waitFor lets (fake) time pass in small steps until cond holds. The
// tests run in synctest bubbles: the elector's clock, its contexts'
// deadlines and the memory store all run on the bubble's time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 10000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("never, in 100s: %s", what)
}

const ttl = 9 * time.Second

func start(t *testing.T, b election.Backend, id string) (*election.Elector, *election.Candidate) {
	t.Helper()
	el, err := election.New(b, election.Config{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	c, err := el.NewCandidate(election.CandidateConfig{Name: "job", ID: id, Metadata: map[string]string{"addr": id + ":80"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = el.Close(ctx)
	})
	return el, c
}

// Readiness WhenLeading: the leader is ready and shows its fence; the
// follower is not, and shows the leader; a leader whose renewals fail is
// Uncertain, not ready unless UncertainIsReady, and the deadline ends it.
// WhenConnected: the follower is ready while its session is renewed.
func TestReadiness(t *testing.T) { synctest.Test(t, testReadiness) }

func testReadiness(t *testing.T) {
	store := memory.NewStore()
	ca := store.NewClient()
	elA, a := start(t, ca, "a")
	elB, b := start(t, store.NewClient(), "b")
	opts := func(c *election.Candidate, r health.Ready, u bool) health.Options {
		return health.Options{Candidate: c, Ready: r, UncertainIsReady: u}
	}
	leaderReady := health.Readiness(elA, opts(a, health.WhenLeading, false))
	leaderReadyU := health.Readiness(elA, opts(a, health.WhenLeading, true))
	followerReady := health.Readiness(elB, opts(b, health.WhenLeading, false))
	followerConnected := health.Readiness(elB, opts(b, health.WhenConnected, false))

	term, _ := a.Term()
	code, rep := get(t, leaderReady)
	if code != http.StatusOK || rep.State != "leading" || rep.Fence != term.Fence || rep.Leader == nil || rep.Leader.ID != "a" || !rep.Session {
		t.Fatalf("leader: %d %+v, want 200, leading, fence %d", code, rep, term.Fence)
	}
	waitFor(t, "b sees a", func() bool { l, ok := b.Leader(); return ok && l.ID == "a" })
	code, rep = get(t, followerReady)
	if code != http.StatusServiceUnavailable || rep.Reason != "not leading" || rep.Leader == nil || rep.Leader.Metadata["addr"] != "a:80" {
		t.Fatalf("follower: %d %+v, want 503 not leading, showing a", code, rep)
	}
	if code, rep = get(t, followerConnected); code != http.StatusOK {
		t.Fatalf("follower WhenConnected: %d %+v, want 200", code, rep)
	}

	// Cut a off: its renewals fail, it goes Uncertain, then loses.
	if err := ca.Cut(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a uncertain", func() bool { return a.State() == election.StateUncertain })
	if code, rep = get(t, leaderReady); code != http.StatusServiceUnavailable || !strings.Contains(rep.Reason, "uncertain") {
		t.Fatalf("uncertain leader: %d %+v, want 503 uncertain", code, rep)
	}
	if code, rep = get(t, leaderReadyU); code != http.StatusOK {
		t.Fatalf("uncertain leader with UncertainIsReady: %d %+v, want 200", code, rep)
	}
	waitFor(t, "a loses", func() bool { return !a.IsLeader() && a.State() != election.StateUncertain })
	if code, rep = get(t, leaderReadyU); code != http.StatusServiceUnavailable {
		t.Fatalf("a after the deadline: %d %+v, want 503", code, rep)
	}
	aConnected := health.Readiness(elA, opts(a, health.WhenConnected, true))
	if code, rep = get(t, aConnected); code != http.StatusServiceUnavailable {
		t.Fatalf("a cut off, WhenConnected: %d %+v, want 503", code, rep)
	}
}

// stuckBackend's sessions block in Renew until released, ignoring the
// context: a stuck renewal loop.
type stuckBackend struct {
	*memory.Client
	mu    sync.Mutex
	stuck chan struct{}
}

func (b *stuckBackend) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	s, err := b.Client.OpenSession(ctx, ttl)
	if err != nil {
		return nil, err
	}
	return &stuckSession{Session: s, b: b}, nil
}

type stuckSession struct {
	election.Session
	b *stuckBackend
}

func (s *stuckSession) Renew(ctx context.Context, claims []election.Claim) error {
	s.b.mu.Lock()
	ch := s.b.stuck
	s.b.mu.Unlock()
	if ch != nil {
		<-ch
	}
	return s.Session.Renew(ctx, claims)
}

// Liveness: 200 while the renewal loop makes progress, even through a
// store outage; 503 once it has been stuck for longer than TTL + OpTimeout, and
// 200 again when it moves; 503 after Close.
func TestLiveness(t *testing.T) { synctest.Test(t, testLiveness) }

func testLiveness(t *testing.T) {
	b := &stuckBackend{Client: memory.New()}
	el, _ := start(t, b, "a")
	live := health.Liveness(el)
	if code, rep := get(t, live); code != http.StatusOK || !rep.Session {
		t.Fatalf("live: %d %+v", code, rep)
	}
	b.mu.Lock()
	b.stuck = make(chan struct{})
	b.mu.Unlock()
	waitFor(t, "stalled", func() bool { return el.Status().Stalled })
	code, rep := get(t, live)
	if code != http.StatusServiceUnavailable || !rep.Stalled || !strings.Contains(rep.Reason, "no progress") {
		t.Fatalf("stuck loop: %d %+v, want 503 stalled", code, rep)
	}
	b.mu.Lock()
	close(b.stuck)
	b.stuck = nil
	b.mu.Unlock()
	waitFor(t, "moving again", func() bool { return !el.Status().Stalled })
	if code, rep := get(t, live); code != http.StatusOK {
		t.Fatalf("after the loop moved: %d %+v, want 200", code, rep)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := el.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if code, rep := get(t, live); code != http.StatusServiceUnavailable || !strings.Contains(rep.Reason, "closed") {
		t.Fatalf("after Close: %d %+v, want 503 closed", code, rep)
	}
}

// A WhenLeading check with no candidate is a configuration mistake: it
// is never ready, and says why.
func TestReadinessWithoutCandidate(t *testing.T) {
	el, err := election.New(memory.New(), election.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer el.Close(context.Background())
	code, rep := get(t, health.Readiness(el, health.Options{}))
	if code != http.StatusServiceUnavailable || !strings.Contains(rep.Reason, "Options.Candidate") {
		t.Fatalf("%d %+v", code, rep)
	}
}
