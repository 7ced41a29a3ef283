//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/electionkit/election/internal/faultproxy"
	"github.com/electionkit/election/internal/teststore"
)

// ttl is the claim TTL of the tests: etcd's test members grant 1s, but 2s
// keeps renewals healthy on a loaded 2-core machine.
const ttl = "2s"

// store is one real store and how to name it in a URL, directly or
// through a fault proxy.
type store struct {
	name string
	addr string
	url  func(addr string) string
}

func startStore(t *testing.T, name string) store {
	t.Helper()
	switch name {
	case "etcd":
		e := teststore.StartEtcd(t, teststore.EtcdOptions{})
		return store{name, e.Addr, func(a string) string { return "etcd://" + a + "/elect-test" }}
	case "redis":
		r := teststore.StartRedis(t, teststore.RedisOptions{})
		return store{name, r.Addr, func(a string) string { return "redis://" + a + "?no_quarantine=true" }}
	case "consul":
		c := teststore.StartConsul(t, teststore.ConsulOptions{})
		return store{name, c.Addr, func(a string) string { return "consul://" + a + "?min_ttl=1s" }}
	}
	t.Fatalf("unknown store %q", name)
	return store{}
}

func (s store) direct() string { return s.url(s.addr) }

// proxied returns a URL through a new fault proxy to the store.
func (s store) proxied(t *testing.T) (string, *faultproxy.Proxy) {
	t.Helper()
	p, err := faultproxy.New(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return s.url(p.Addr()), p
}

// TestStores runs elect against real etcd, Redis and Consul servers.
func TestStores(t *testing.T) {
	for _, name := range []string{"etcd", "redis", "consul"} {
		t.Run(name, func(t *testing.T) {
			s := startStore(t, name)
			t.Run("TwoRunsTakeTurns", func(t *testing.T) { testTwoRuns(t, s) })
			t.Run("Kill9", func(t *testing.T) { testKill9(t, s) })
			t.Run("Cut", func(t *testing.T) { testCut(t, s, false) })
			t.Run("SigtermForwarded", func(t *testing.T) { testSigterm(t, s) })
			t.Run("NoWaitAndLeader", func(t *testing.T) { testNoWait(t, s) })
			t.Run("Lease", func(t *testing.T) { testLease(t, s) })
			t.Run("LostExits76", func(t *testing.T) { testLostExits76(t, s) })
			if name == "redis" { // not about the store
				t.Run("SignalsPassedOn", func(t *testing.T) { testSignalsPassedOn(t, s) })
				t.Run("CutCommandIgnoresSIGTERM", func(t *testing.T) { testCut(t, s, true) })
				t.Run("SupervisorKilled", func(t *testing.T) { testSupervisorKilled(t, s) })
			}
		})
	}
}

// testTwoRuns: two elect run with --restart always over one election take
// turns; their commands never overlap and the fences increase.
func testTwoRuns(t *testing.T, s store) {
	log := filepath.Join(t.TempDir(), "log")
	script := tickScript(log, 8)
	args := func(id string) []string {
		return []string{"run", "--ttl", ttl, "--id", id, "--restart", "always", "--backoff", "200ms",
			"--backoff-max", "1s", "turns", "--", "sh", "-c", script}
	}
	a := startElect(t, "A", s.direct(), args("A")...)
	b := startElect(t, "B", s.direct(), args("B")...)
	eventually(t, "four terms", func() bool { return len(starts(readLines(t, log))) >= 4 })
	signalProc(t, a, syscall.SIGTERM)
	signalProc(t, b, syscall.SIGTERM)
	a.wait()
	b.wait()
	lines := readLines(t, log)
	order := checkNoOverlap(t, lines)
	ids := map[string]int{}
	for _, l := range starts(lines) {
		ids[l.id]++
	}
	if ids["A"] == 0 || ids["B"] == 0 {
		t.Fatalf("terms %v: want both A and B to lead", order)
	}
	t.Logf("%d terms in turn, fences increasing: %v", len(order), order)
}

// testKill9: kill -9 of the leader's elect kills its command, a grandchild
// and a descendant that called setsid; the other elect's command starts.
func testKill9(t *testing.T, s store) {
	dir := t.TempDir()
	log, pids := filepath.Join(dir, "log"), filepath.Join(dir, "pids")
	tree := fmt.Sprintf(`sleep 300 & echo $! >> %q; setsid sleep 300 & echo $! >> %q; echo $$ >> %q; `, pids, pids, pids) +
		tickScript(log, 0)
	a := startElect(t, "A", s.direct(), "run", "--ttl", ttl, "--id", "A", "k9", "--", "sh", "-c", tree)
	var procs []int
	eventually(t, "A's command and its descendants", func() bool {
		b, _ := os.ReadFile(pids)
		procs = procs[:0]
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			procs = append(procs, n)
		}
		return len(procs) == 3
	})
	m := regexp.MustCompile(`supervisor pid (\d+)`).FindStringSubmatch(a.stderr.String())
	if m == nil {
		t.Fatalf("A did not log its supervisor's pid:\n%s", a.stderr.String())
	}
	sup, _ := strconv.Atoi(m[1])
	procs = append(procs, sup)
	b := startElect(t, "B", s.direct(), "run", "--ttl", ttl, "--id", "B", "k9", "--", "sh", "-c", tickScript(log, 0))
	eventually(t, "B campaigning", func() bool { return strings.Contains(b.stderr.String(), "campaigning in") })

	killed := time.Now()
	signalProc(t, a, syscall.SIGKILL)
	eventually(t, "A's supervisor, command, grandchild and setsid descendant gone", func() bool {
		for _, p := range procs {
			if !gone(p) {
				return false
			}
		}
		return true
	})
	allGone := time.Since(killed)
	eventually(t, "B's command started", func() bool {
		for _, l := range starts(readLines(t, log)) {
			if l.id == "B" {
				return true
			}
		}
		return false
	})
	checkNoOverlap(t, readLines(t, log))
	t.Logf("after kill -9 of A's elect, all of its processes %v were gone within %v; B's command started %v after the kill",
		procs, allGone.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
}

// testCut: cut the leader's elect from the store; its command is killed
// before the deadline, and before the successor's command starts. With
// ignoreTerm the command ignores SIGTERM, so only the SIGKILL a kill
// margin before the deadline stops it (a 4s TTL: a 200ms kill margin).
func testCut(t *testing.T, s store, ignoreTerm bool) {
	log := filepath.Join(t.TempDir(), "log")
	urlA, proxy := s.proxied(t)
	scriptA, ttl := tickScript(log, 0), ttl
	if ignoreTerm {
		scriptA = strings.Replace(scriptA, "trap 'stamp term; exit 143' TERM", "trap '' TERM", 1)
		ttl = "4s"
	}
	name := "cut"
	if ignoreTerm {
		name = "cut-kill"
	}
	a := startElect(t, "A", urlA, "run", "--ttl", ttl, "--id", "A", name, "--", "sh", "-c", scriptA)
	eventually(t, "A's command started", func() bool { return len(starts(readLines(t, log))) > 0 })
	b := startElect(t, "B", s.direct(), "run", "--ttl", ttl, "--id", "B", name, "--", "sh", "-c", tickScript(log, 0))
	eventually(t, "B campaigning", func() bool { return strings.Contains(b.stderr.String(), "campaigning in") })
	time.Sleep(300 * time.Millisecond) // a few ticks of A
	cut := time.Now()
	if err := proxy.Cut(untilCtx(t)); err != nil {
		t.Fatal(err)
	}
	var bStart line
	eventually(t, "B's command started", func() bool {
		for _, l := range starts(readLines(t, log)) {
			if l.id == "B" {
				bStart = l
				return true
			}
		}
		return false
	})
	lines := readLines(t, log)
	checkNoOverlap(t, lines)
	var aLast, aTerm line
	for _, l := range lines {
		if l.id != "A" {
			continue
		}
		if l.kind == "term" {
			aTerm = l
		}
		if !l.at.IsZero() && !l.deadline.IsZero() {
			aLast = l
		}
	}
	if !gone(aLast.pid) {
		t.Fatalf("A's command (pid %d) still runs after B's command started", aLast.pid)
	}
	if aLast.at.IsZero() || bStart.at.IsZero() {
		t.Fatalf("missing timestamps: A's last line %+v, B's first %+v", aLast, bStart)
	}
	if !aLast.at.Before(bStart.at) {
		t.Fatalf("A's command wrote at %v, after B's started at %v", aLast.at, bStart.at)
	}
	if !aLast.at.Before(aLast.deadline) {
		t.Fatalf("A's command wrote at %v, after its term's deadline %v", aLast.at, aLast.deadline)
	}
	msg := fmt.Sprintf("cut at 0; A's deadline %v; A's last write %v (%v before its deadline)",
		aLast.deadline.Sub(cut).Round(time.Millisecond), aLast.at.Sub(cut).Round(time.Millisecond),
		aLast.deadline.Sub(aLast.at).Round(time.Millisecond))
	if !aTerm.at.IsZero() {
		msg += fmt.Sprintf("; SIGTERM seen %v", aTerm.at.Sub(cut).Round(time.Millisecond))
	}
	t.Logf("%s; B's command started %v (%v after A's last write)", msg, bStart.at.Sub(cut).Round(time.Millisecond),
		bStart.at.Sub(aLast.at).Round(time.Millisecond))
	if err := proxy.Heal(untilCtx(t)); err != nil {
		t.Fatal(err)
	}
	_ = a
}

// testSigterm: SIGTERM to elect reaches the command, elect exits with the
// command's status and releases the election at once.
func testSigterm(t *testing.T, s store) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	w := startElect(t, "watch", s.direct(), "watch", "-o", "json", "sig")
	eventually(t, "elect watch showing the vacancy", func() bool { return strings.Contains(w.stderr.String(), `"leader":null`) })
	a := startElect(t, "A", s.direct(), "run", "--ttl", ttl, "--id", "A", "sig", "--", "sh", "-c",
		fmt.Sprintf(`trap 'exit 7' TERM; echo $ELECTION_FENCE > %q; while :; do sleep 0.05; done`, ready))
	eventually(t, "the command started", func() bool { _, err := os.Stat(ready); return err == nil })
	signalProc(t, a, syscall.SIGTERM)
	if code := a.wait(); code != 7 {
		t.Fatalf("elect exited %d after SIGTERM, want the command's 7; it said:\n%s", code, a.stderr.String())
	}
	if code, out := runElect(t, s.direct(), "leader", "sig"); code != exitVacant {
		t.Fatalf("elect leader exited %d, want %d (vacant: released on exit):\n%s", code, exitVacant, out)
	}
	eventually(t, "elect watch showing A, then the vacancy", func() bool {
		var seen []string
		for _, l := range strings.Split(strings.TrimSpace(w.stderr.String()), "\n") {
			var v viewJSON
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				t.Fatalf("elect watch -o json printed %q: %v", l, err)
			}
			who := "vacant"
			if v.Leader != nil {
				who = v.Leader.ID
			}
			seen = append(seen, who)
		}
		return strings.Contains(strings.Join(seen, " "), "vacant A vacant")
	})
	signalProc(t, w, syscall.SIGTERM)
	if code := w.wait(); code != 0 {
		t.Fatalf("elect watch exited %d after SIGTERM, want 0", code)
	}
}

// testNoWait: --no-wait exits 75 when the election is held, runs the
// command when it is free; elect leader shows the holder, exits 3 when
// vacant.
func testNoWait(t *testing.T, s store) {
	ready := filepath.Join(t.TempDir(), "ready")
	a := startElect(t, "A", s.direct(), "run", "--ttl", ttl, "--id", "A", "--meta", "role=primary", "nw", "--", "sh", "-c",
		fmt.Sprintf(`echo $ELECTION_FENCE > %q; exec sleep 300`, ready))
	eventually(t, "the command started", func() bool { b, _ := os.ReadFile(ready); return len(b) > 0 })
	b, _ := os.ReadFile(ready)
	fence, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)

	if code, out := runElect(t, s.direct(), "run", "--no-wait", "--ttl", ttl, "nw", "--", "true"); code != exitTaken || !strings.Contains(out, `held by "A"`) {
		t.Fatalf("elect run --no-wait on a held election: exit %d, want %d naming A:\n%s", code, exitTaken, out)
	}
	p := startElect(t, "leader", s.direct(), "leader", "-o", "json", "nw")
	if code := p.wait(); code != 0 {
		t.Fatalf("elect leader: exit %d:\n%s", code, p.stderr.String())
	}
	var v viewJSON
	if err := json.Unmarshal([]byte(p.stderr.String()), &v); err != nil || v.Leader == nil {
		t.Fatalf("elect leader -o json: %v: %q", err, p.stderr.String())
	}
	if v.Leader.ID != "A" || v.Leader.Fence != fence || v.Leader.Metadata["role"] != "primary" {
		t.Fatalf("elect leader: %+v, want A with fence %d (the command's ELECTION_FENCE) and role=primary", *v.Leader, fence)
	}
	signalProc(t, a, syscall.SIGTERM)
	if code := a.wait(); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("elect exited %d, want %d (the command died of SIGTERM)", code, 128+int(syscall.SIGTERM))
	}
	if code, out := runElect(t, s.direct(), "run", "--no-wait", "--ttl", ttl, "nw", "--", "sh", "-c", "exit 4"); code != 4 {
		t.Fatalf("elect run --no-wait on a free election: exit %d, want the command's 4:\n%s", code, out)
	}
	if code, out := runElect(t, s.direct(), "leader", "nw"); code != exitVacant || !strings.Contains(out, "vacant") {
		t.Fatalf("elect leader on a vacant election: exit %d, want %d:\n%s", code, exitVacant, out)
	}
	if code, out := runElect(t, s.direct(), "run", "--ttl", ttl, "--grace", "1500ms", "nw", "--", "true"); code != exitUsage || !strings.Contains(out, "--grace 1.5s is too long") {
		t.Fatalf("elect run --grace longer than the TTL allows: exit %d, want %d:\n%s", code, exitUsage, out)
	}
}

// testLease: elect lease runs the command once per TTL, exits 75 when the
// lease is held, renews it while the command runs, releases it with
// --release only.
func testLease(t *testing.T, s store) {
	dir := t.TempDir()
	if code, out := runElect(t, s.direct(), "lease", "--ttl", "30s", "job", "--", "sh", "-c", "exit 3"); code != 3 {
		t.Fatalf("first elect lease: exit %d, want the command's 3:\n%s", code, out)
	}
	if code, out := runElect(t, s.direct(), "lease", "--ttl", "30s", "job", "--", "true"); code != exitTaken {
		t.Fatalf("elect lease on a kept lease: exit %d, want %d:\n%s", code, exitTaken, out)
	}
	for i := range 2 {
		if code, out := runElect(t, s.direct(), "lease", "--release", "--ttl", "30s", "released", "--", "true"); code != 0 {
			t.Fatalf("elect lease --release, run %d: exit %d, want 0:\n%s", i+1, code, out)
		}
	}
	// Renewed while the command runs: still held well past one TTL.
	ready, stop, idFile := filepath.Join(dir, "ready"), filepath.Join(dir, "stop"), filepath.Join(dir, "id")
	long := startElect(t, "long", s.direct(), "lease", "--ttl", ttl, "renewed", "--", "sh", "-c",
		fmt.Sprintf(`echo "$ELECTION_ID" > %q; cat "$ELECTION_DEADLINE_FILE" > %q; while [ ! -e %q ]; do sleep 0.05; done`, idFile, ready, stop))
	eventually(t, "the long command started", func() bool { b, _ := os.ReadFile(ready); return len(b) > 0 })
	b, _ := os.ReadFile(ready)
	first, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("ELECTION_DEADLINE_FILE held %q: %v", b, err)
	}
	for time.Now().Before(first.Add(2 * time.Second)) {
		time.Sleep(50 * time.Millisecond)
	}
	if code, out := runElect(t, s.direct(), "lease", "--ttl", ttl, "renewed", "--", "true"); code != exitTaken {
		t.Fatalf("elect lease past the first lease's TTL while its command runs: exit %d, want %d (renewed):\n%s", code, exitTaken, out)
	}
	// Without --id, the command's ELECTION_ID is the holder readers see.
	id := strings.TrimSpace(readFile(t, idFile))
	code, out := runElect(t, s.direct(), "leader", "-o", "json", "renewed")
	var v viewJSON
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Leader == nil || id == "" || v.Leader.ID != id {
		t.Fatalf("elect leader on the held lease: exit %d, %v, %q; want the command's ELECTION_ID %q", code, err, out, id)
	}
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := long.wait(); code != 0 {
		t.Fatalf("the long lease: exit %d, want 0:\n%s", code, long.stderr.String())
	}
}

// testSupervisorKilled: kill -9 of the supervisor leaves the command to
// elect, a subreaper too, which kills it.
func testSupervisorKilled(t *testing.T, s store) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	a := startElect(t, "A", s.direct(), "run", "--ttl", ttl, "--id", "A", "sk", "--", "sh", "-c",
		fmt.Sprintf(`setsid sleep 300 & echo $! >> %q; echo $$ >> %q; while :; do sleep 0.05; done`, pids, pids))
	var procs []int
	eventually(t, "the command and its setsid descendant", func() bool {
		b, _ := os.ReadFile(pids)
		procs = procs[:0]
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			procs = append(procs, n)
		}
		return len(procs) == 2
	})
	m := regexp.MustCompile(`supervisor pid (\d+)`).FindStringSubmatch(a.stderr.String())
	if m == nil {
		t.Fatalf("no supervisor pid in:\n%s", a.stderr.String())
	}
	sup, _ := strconv.Atoi(m[1])
	if err := syscall.Kill(sup, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the command and its setsid descendant gone", func() bool { return gone(procs[0]) && gone(procs[1]) })
	if code := a.wait(); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("elect exited %d, want %d (the supervisor was killed; --restart never)", code, 128+int(syscall.SIGKILL))
	}
}
