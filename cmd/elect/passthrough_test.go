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
)

// testSignalsPassedOn: SIGHUP, SIGUSR1 and SIGUSR2 to elect reach the
// command, which goes on running (elect neither stops it nor resigns);
// SIGTERM then ends it, and elect exits with its status.
func testSignalsPassedOn(t *testing.T, s store) {
	dir := t.TempDir()
	ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
	script := fmt.Sprintf(`got=%q
trap 'echo HUP >> "$got"' HUP
trap 'echo USR1 >> "$got"' USR1
trap 'echo USR2 >> "$got"' USR2
trap 'exit 9' TERM
echo $$ > %q
while :; do sleep 0.05; done`, got, ready)
	a := startElect(t, "A", s.direct(), "run", "--ttl", ttl, "--id", "A", "pass", "--", "sh", "-c", script)
	eventually(t, "the command started", func() bool { b, _ := os.ReadFile(ready); return len(b) > 0 })
	b, _ := os.ReadFile(ready)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	// One signal at a time: the command records each before the next is
	// sent, so that none is merged with another of its kind.
	var want []string
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP} {
		name := strings.TrimPrefix(sigName(sig), "SIG")
		want = append(want, name)
		signalProc(t, a, sig)
		eventually(t, "the command recording "+strings.Join(want, " "), func() bool {
			b, _ := os.ReadFile(got)
			return strings.Join(strings.Fields(string(b)), " ") == strings.Join(want, " ")
		})
	}
	if gone(pid) {
		t.Fatalf("the command (pid %d) ended after the signals it should only have received", pid)
	}
	select {
	case <-a.done:
		t.Fatalf("elect exited (%d) on a signal it should only pass on:\n%s", a.code, a.stderr.String())
	default:
	}
	code, out := runElect(t, s.direct(), "leader", "-o", "json", "pass")
	var v viewJSON
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Leader == nil || v.Leader.ID != "A" {
		t.Fatalf("elect leader after the signals: exit %d, %v, want A still leading:\n%s", code, err, out)
	}
	signalProc(t, a, syscall.SIGTERM)
	if code := a.wait(); code != 9 {
		t.Fatalf("elect exited %d after SIGTERM, want the command's 9:\n%s", code, a.stderr.String())
	}
}

func sigName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	case syscall.SIGUSR2:
		return "SIGUSR2"
	}
	return sig.String()
}

// testLostExits76: elect run --no-wait and elect lease cut off from the
// store kill their command before the deadline and exit 76, as documented.
func testLostExits76(t *testing.T, s store) {
	for _, sub := range []string{"run", "lease"} {
		t.Run(sub, func(t *testing.T) {
			dir := t.TempDir()
			ready := filepath.Join(dir, "ready")
			url, proxy := s.proxied(t)
			args := []string{sub, "--ttl", ttl, "--id", "A"}
			if sub == "run" {
				args = append(args, "--no-wait")
			}
			args = append(args, "lost-"+sub, "--", "sh", "-c",
				fmt.Sprintf(`echo $$ > %q; while :; do sleep 0.05; done`, ready))
			a := startElect(t, "A", url, args...)
			eventually(t, "the command started", func() bool { b, _ := os.ReadFile(ready); return len(b) > 0 })
			b, _ := os.ReadFile(ready)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if err := proxy.Cut(untilCtx(t)); err != nil {
				t.Fatal(err)
			}
			if code := a.wait(); code != exitLost {
				t.Fatalf("elect %s cut from the store: exit %d, want %d:\n%s", sub, code, exitLost, a.stderr.String())
			}
			if !gone(pid) {
				t.Fatalf("the command (pid %d) still runs after elect exited %d", pid, exitLost)
			}
			if !strings.Contains(a.stderr.String(), "lost; the command was stopped") {
				t.Errorf("elect %s did not say the hold was lost:\n%s", sub, a.stderr.String())
			}
		})
	}
}

// TestRestartBackoffReset: with --restart always, the delay before each new
// campaign doubles from --backoff up to --backoff-max, and goes back to
// --backoff after a command that ran at least --backoff-max; elect waits
// at least the delay it announces between one command's end and the next
// one's start.
func TestRestartBackoffReset(t *testing.T) {
	// --backoff-max far above what a short run takes on a loaded machine
	// (up to 1s seen), so that only the long run resets the delay.
	const backoff, backoffMax = 100 * time.Millisecond, 5 * time.Second
	s := startStore(t, "redis")
	dir := t.TempDir()
	runs, log := filepath.Join(dir, "runs"), filepath.Join(dir, "log")
	// Run 4 outlasts --backoff-max; runs 6 and later wait to be stopped;
	// the others fail at once.
	script := fmt.Sprintf(`echo x >> %q; n=$(wc -l < %q)
echo "start $n $(date +%%s%%N)" >> %q
case $n in
4) sleep 5.5 ;;
[6-9]|[1-9][0-9]) trap 'exit 0' TERM; while :; do sleep 0.05; done ;;
esac
echo "end $n $(date +%%s%%N)" >> %q
exit 1`, runs, runs, log, log)
	a := startElect(t, "A", s.direct(), "run", "--ttl", ttl, "--restart", "always", "--backoff", backoff.String(),
		"--backoff-max", backoffMax.String(), "backoff", "--", "sh", "-c", script)
	eventually(t, "the sixth run", func() bool { b, _ := os.ReadFile(log); return strings.Contains(string(b), "start 6 ") })
	signalProc(t, a, syscall.SIGTERM)
	a.wait()
	out := a.stderr.String()

	// What elect announced: how long each command ran, and the delay
	// that followed.
	ranRe := regexp.MustCompile(`the command exited with status 1 after (\S+); resigned`)
	delayRe := regexp.MustCompile(`campaigning again in (\S+) \(--restart always\)`)
	var ran, delays []time.Duration
	for _, m := range ranRe.FindAllStringSubmatch(out, -1) {
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatalf("elect logged run time %q: %v", m[1], err)
		}
		ran = append(ran, d)
	}
	for _, m := range delayRe.FindAllStringSubmatch(out, -1) {
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatalf("elect logged delay %q: %v", m[1], err)
		}
		delays = append(delays, d)
	}
	if len(ran) < 5 || len(delays) < 5 {
		t.Fatalf("want 5 runs and restarts logged, got %d and %d:\n%s", len(ran), len(delays), out)
	}
	// The rule, applied to the run times elect saw: a run of at least
	// --backoff-max resets the delay, otherwise it doubles, capped.
	next, reset, doubled := backoff, false, false
	for i := range 5 {
		want := next
		if ran[i] >= backoffMax {
			want, reset = backoff, reset || next > backoff
		} else if i > 0 && want == 2*delays[i-1] {
			doubled = true
		}
		if delays[i] != want {
			t.Fatalf("restart %d: delay %v after a run of %v, want %v (delays %v, runs %v)", i+1, delays[i], ran[i], want, delays[:5], ran[:5])
		}
		next = min(want*2, backoffMax)
	}
	if !reset || !doubled {
		t.Fatalf("delays %v after runs %v: want a doubling, then a reset to %v after the long run", delays[:5], ran[:5], backoff)
	}
	// And elect really waited: run i+1 started at least delay i after
	// run i ended, on the commands' own clock.
	stamps := map[string]time.Time{}
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, log)), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		ns, _ := strconv.ParseInt(f[2], 10, 64)
		stamps[f[0]+f[1]] = time.Unix(0, ns)
	}
	for i := 1; i <= 5; i++ {
		end, start := stamps["end"+strconv.Itoa(i)], stamps["start"+strconv.Itoa(i+1)]
		if end.IsZero() || start.IsZero() {
			t.Fatalf("run %d's end or run %d's start not logged:\n%s", i, i+1, readFile(t, log))
		}
		if gap := start.Sub(end); gap < delays[i-1] {
			t.Errorf("run %d started %v after run %d ended, before the announced delay %v", i+1, gap, i, delays[i-1])
		}
	}
	t.Logf("runs %v; delays %v", ran[:5], delays[:5])
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
