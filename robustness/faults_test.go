package robustness

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/electionkit/election/internal/testserver"
	"github.com/electionkit/election/internal/teststore"
)

// store is the one real store of a run and how candidates reach it.
type store struct {
	name string
	*testserver.Process
	addr string
	// url is the backend URL for a candidate that reaches the store
	// through a proxy at proxyAddr.
	url func(proxyAddr string) string
	// expiryLag is how long after a TTL the store may still hold an
	// unrenewed claim (as in the conformance harnesses).
	expiryLag time.Duration
}

// ttl is the TTL every candidate campaigns with: short, so that a run of a
// minute sees many terms, and within what each store allows (etcd's
// minimum lease TTL with the test members' Raft timing is 1s, Consul's
// session_ttl_min in teststore is 1s).
const ttl = 2 * time.Second

// startStore starts the store a backend runs against.
func startStore(t *testing.T, backend string) *store {
	t.Helper()
	q := "ttl=" + ttl.String()
	switch backend {
	case "etcd":
		e := teststore.StartEtcd(t, teststore.EtcdOptions{})
		return &store{name: backend, Process: e.Process, addr: e.Addr, expiryLag: time.Second,
			url: func(a string) string { return "etcd://" + a + "/robustness?" + q }}
	case "redis":
		r := teststore.StartRedis(t, teststore.RedisOptions{})
		return &store{name: backend, Process: r.Process, addr: r.Addr, expiryLag: 250 * time.Millisecond,
			url: func(a string) string { return "redis://" + a + "/0?prefix=robustness&" + q }}
	case "consul":
		c := teststore.StartConsul(t, teststore.ConsulOptions{})
		// Consul invalidates a session between TTL and 2×TTL.
		return &store{name: backend, Process: c.Process, addr: c.Addr, expiryLag: ttl + 500*time.Millisecond,
			url: func(a string) string {
				return "consul://" + a + "?prefix=robustness&min_ttl=" + teststore.DefaultConsulMinTTL.String() + "&" + q
			}}
	}
	t.Fatalf("unknown backend %q (want etcd, redis or consul; memory cannot be shared across processes)", backend)
	return nil
}

// faultRun is one fault as it happened.
type faultRun struct {
	Kind    string
	Process string // the target; empty for the store
	// Follower: the target was not the leader's process.
	Follower bool
	From, To time.Time
	// Fence is the greatest fence of a handler running when the fault
	// began (0: none ran).
	Fence uint64
}

// label names the fault in reports: its kind, and "/follower" when it
// struck a process other than the leader's.
func (fr faultRun) label() string {
	if fr.Follower {
		return fr.Kind + "/follower"
	}
	return fr.Kind
}

// fault is one kind of the catalogue. inject applies it to the target
// (the leader's process, or another live one if none leads) and returns
// once it has healed: frac, drawn from the schedule's seed, scales its
// length.
type fault struct {
	name     string
	onTarget bool
	inject   func(w *world, target *proc, frac float64)
}

// between returns a duration from lo to hi TTLs, at frac of the way.
func between(lo, hi, frac float64) time.Duration {
	return time.Duration((lo + (hi-lo)*frac) * float64(ttl))
}

// catalogue lists the faults the schedule draws from, each with equal
// weight. Member and agent loss need more than one store node; they are
// left to the multi-node harnesses (README).
var catalogue = []fault{
	{"partition", true, func(w *world, p *proc, frac float64) {
		// From a quarter of a TTL (the term survives, Uncertain) to three
		// (it is lost and another is elected).
		ctx, cancel := ctxBound()
		defer cancel()
		if err := p.proxy.Cut(ctx); err != nil {
			w.t.Errorf("cut %s: %v", p.name, err)
		}
		time.Sleep(between(0.25, 3, frac))
		if err := p.proxy.Heal(ctx); err != nil {
			w.t.Errorf("heal %s: %v", p.name, err)
		}
	}},
	{"process-pause", true, func(w *world, p *proc, frac float64) {
		// SIGSTOP: a frozen leader neither renews nor notices; only the
		// fence protects writes it sends once it thaws.
		w.signal(p, syscall.SIGSTOP)
		time.Sleep(between(0.25, 3, frac))
		w.signal(p, syscall.SIGCONT)
	}},
	{"process-kill", true, func(w *world, p *proc, _ float64) {
		w.kill(p)
	}},
	{"linger-stop", true, func(w *world, p *proc, _ float64) {
		// Stop with a handler that goes on writing for 1.5 TTL after its
		// context ended: the claim must outlive it.
		w.end(p, "linger-stop")
		w.signal(p, syscall.SIGUSR1)
		w.wait(p)
	}},
	{"close", true, func(w *world, p *proc, _ float64) {
		w.end(p, "close")
		w.record(time.Now(), func() { w.rec.Closing(p.name) })
		w.signal(p, syscall.SIGUSR2)
		w.wait(p)
	}},
	{"store-pause", false, func(w *world, _ *proc, frac float64) {
		ctx, cancel := ctxBound()
		defer cancel()
		if err := w.store.Pause(ctx); err != nil {
			w.t.Fatalf("pause the store: %v", err)
		}
		time.Sleep(between(0.25, 2.5, frac))
		if err := w.store.Resume(ctx); err != nil {
			w.t.Fatalf("resume the store: %v", err)
		}
	}},
	{"store-restart", false, func(w *world, _ *proc, frac float64) {
		// Down for up to 1.5 TTL, then back with its data (etcd, Consul)
		// or empty (Redis, without persistence: the quarantine holds).
		ctx, cancel := ctxBound()
		defer cancel()
		if err := w.store.Stop(ctx); err != nil {
			w.t.Fatalf("stop the store: %v", err)
		}
		time.Sleep(between(0, 1.5, frac))
		if err := w.store.Start(ctx); err != nil {
			w.t.Fatalf("restart the store: %v", err)
		}
	}},
}

// inject applies f, recording it in the history and in the world's
// schedule. A fault on a process strikes the leader's, unless follower is
// set or no handler runs: then pick chooses a live process other than the
// leader's (a waiting candidate killed or cut off while it is next in line,
// say).
func (w *world) inject(f fault, frac float64, follower bool, pick *rand.Rand) {
	var target, leader *proc
	if f.onTarget {
		leader = w.leader()
		target = leader
		if follower || leader == nil {
			var others []*proc
			for _, p := range w.live() {
				if p != leader {
					others = append(others, p)
				}
			}
			if len(others) == 0 {
				w.t.Fatalf("no live candidate to inject %s into", f.name)
			}
			target = others[pick.IntN(len(others))]
		}
	}
	fr := faultRun{Kind: f.name, From: time.Now()}
	if target != nil {
		fr.Process = target.name
		fr.Follower = target != leader
	}
	w.mu.Lock()
	for _, runs := range w.runs {
		for _, run := range runs {
			if run.Running() && run.Fence > fr.Fence {
				fr.Fence = run.Fence
			}
		}
	}
	w.mu.Unlock()
	var heal func()
	w.record(fr.From, func() { heal = w.rec.Fault(fr.Process, fr.label()) })
	f.inject(w, target, frac)
	fr.To = time.Now()
	w.record(fr.To, heal)
	w.mu.Lock()
	w.faults = append(w.faults, fr)
	w.mu.Unlock()
}
