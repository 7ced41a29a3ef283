package robustness

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/electionkit/election/conformance"
	"github.com/electionkit/election/internal/teststore"
)

// store is the one real store of a run and how candidates reach it.
type store struct {
	name string
	// Store pauses, kills and starts the store as a whole: the one server,
	// or every member of an etcd cluster, or every Consul server (client
	// agents keep running).
	conformance.Store
	// nodes are the client addresses candidates reach the store at: one
	// for a single node; the members of an etcd cluster, or a Consul
	// cluster's client agents, each candidate attached to one in turn.
	nodes []string
	// url is the backend URL for a candidate that reaches the store
	// through a proxy at proxyAddr. Nil: args gives the candidate's flags.
	url func(proxyAddr string) string
	// args are the flags that tell a candidate how to reach the store
	// through links (one proxy per node: attachAll), when url is nil.
	args func(links) []string
	// attachAll: every candidate reaches every node, through a proxy each
	// (Redis with Sentinel: the Sentinels and the data servers).
	attachAll bool
	// expiryLag is how long after a TTL the store may still hold an
	// unrenewed claim (as in the conformance harnesses).
	expiryLag time.Duration
	// logs are the store processes' log files by node name, copied next
	// to the history when a run fails or -robustness.keep is set.
	logs map[string]string
	// faults are the kinds a multi-node store adds to the catalogue
	// (member and agent loss, Raft leader changes); nil for one node.
	faults []fault
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
		return &store{name: backend, Store: e.Process, nodes: []string{e.Addr}, expiryLag: time.Second, logs: map[string]string{"etcd": e.LogPath()},
			url: func(a string) string { return "etcd://" + a + "/robustness?" + q }}
	case "redis":
		r := teststore.StartRedis(t, teststore.RedisOptions{})
		return &store{name: backend, Store: r.Process, nodes: []string{r.Addr}, expiryLag: 250 * time.Millisecond, logs: map[string]string{"redis": r.LogPath()},
			url: func(a string) string { return "redis://" + a + "/0?prefix=robustness&" + q }}
	case "consul":
		c := teststore.StartConsul(t, teststore.ConsulOptions{})
		// Consul invalidates a session between TTL and 2×TTL.
		return &store{name: backend, Store: c.Process, nodes: []string{c.Addr}, expiryLag: ttl + 500*time.Millisecond, logs: map[string]string{"consul": c.LogPath()},
			url: func(a string) string {
				return "consul://" + a + "?prefix=robustness&min_ttl=" + teststore.DefaultConsulMinTTL.String() + "&" + q
			}}
	case "etcd-cluster":
		return startEtcdCluster(t)
	case "consul-cluster":
		return startConsulCluster(t)
	case "redis-sentinel":
		return startRedisSentinel(t)
	}
	t.Fatalf("unknown backend %q (want etcd, redis, consul, etcd-cluster, consul-cluster or redis-sentinel; memory cannot be shared across processes)", backend)
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
	// storeWide: the fault strikes a store node (the target's member or
	// agent), and so every candidate attached to it; the history records
	// it as a fault of the store, not of the target's link alone.
	storeWide bool
}

// between returns a duration from lo to hi TTLs, at frac of the way.
func between(lo, hi, frac float64) time.Duration {
	return time.Duration((lo + (hi-lo)*frac) * float64(ttl))
}

// catalogue lists the faults the schedule draws from, each with equal
// weight. A multi-node store adds its own kinds (store.faults): member and
// agent loss, Raft leader changes.
var catalogue = []fault{
	{name: "partition", onTarget: true, inject: func(w *world, p *proc, frac float64) {
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
	{name: "process-pause", onTarget: true, inject: func(w *world, p *proc, frac float64) {
		// SIGSTOP: a frozen leader neither renews nor notices; only the
		// fence protects writes it sends once it thaws.
		w.signal(p, syscall.SIGSTOP)
		time.Sleep(between(0.25, 3, frac))
		w.signal(p, syscall.SIGCONT)
	}},
	{name: "process-kill", onTarget: true, inject: func(w *world, p *proc, _ float64) {
		w.kill(p)
	}},
	{name: "linger-stop", onTarget: true, inject: func(w *world, p *proc, _ float64) {
		// Stop with a handler that goes on writing for 1.5 TTL after its
		// context ended: the claim must outlive it.
		w.end(p, "linger-stop")
		w.signal(p, syscall.SIGUSR1)
		w.wait(p)
	}},
	{name: "close", onTarget: true, inject: func(w *world, p *proc, _ float64) {
		w.end(p, "close")
		w.record(time.Now(), func() { w.rec.Closing(p.name) })
		w.signal(p, syscall.SIGUSR2)
		w.wait(p)
	}},
	{name: "store-pause", inject: func(w *world, _ *proc, frac float64) {
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
	{name: "store-restart", inject: func(w *world, _ *proc, frac float64) {
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
		if f.storeWide && leader != nil && target.node == leader.node {
			// A waiting candidate's member, which is the leader's too.
			fr.Follower = false
		}
	}
	histProcess := fr.Process
	if f.storeWide {
		histProcess = ""
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
	w.record(fr.From, func() { heal = w.rec.Fault(histProcess, fr.label()) })
	f.inject(w, target, frac)
	fr.To = time.Now()
	w.record(fr.To, heal)
	w.mu.Lock()
	w.faults = append(w.faults, fr)
	w.mu.Unlock()
}
