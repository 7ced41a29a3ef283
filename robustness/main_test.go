package robustness

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"go.uber.org/goleak"
	"testing"
)

var (
	flagDuration = flag.Duration("robustness.duration", 60*time.Second,
		"how long each backend runs under faults (CI: the default; hours with e.g. 2h)")
	flagSeed = flag.Int64("robustness.seed", 0,
		"the seed of the fault schedule; 0 picks one from the clock (printed, to replay)")
	flagStrict = flag.Bool("robustness.strict", true,
		"fail on an overlap of a SIGSTOPped leader that the core did not report as an overrun (see pausedOverlaps)")
	flagKeep = flag.Bool("robustness.keep", false,
		"keep each run's history and candidate logs even when it passes")
	flagBackends = flag.String("robustness.backends", "etcd,redis,consul,etcd-cluster,consul-cluster,redis-sentinel",
		"the backends to run, comma-separated, in order")
)

// candidateBin is the candidate program, built once by TestMain (with
// -race when the test runs with it).
var candidateBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "robustness-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	candidateBin = filepath.Join(dir, "candidate")
	args := []string{"build", "-o", candidateBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, "./cmd/candidate")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/candidate: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
