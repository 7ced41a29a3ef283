package testserver

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// modulePath identifies the repository root: the directory whose go.mod
// declares it.
const modulePath = "github.com/electionkit/election"

// BinEnv names the environment variable holding a directory searched first
// for server binaries.
const BinEnv = "ELECTION_TEST_BIN"

// Binary returns the absolute path of the executable server binary name
// ("etcd", "redis-server", "consul"), looking in order in $ELECTION_TEST_BIN,
// in <repo root>/bin (where ./scripts/test builds etcd and consul), on $PATH,
// and in /usr/bin (where Debian installs redis-server).
//
// If none holds it, Binary fails the test with t.Fatalf naming the command
// that installs it; it never skips, because a missing server means the
// suite did not run.
func Binary(t testing.TB, name string) string {
	t.Helper()
	path, searched, err := findBinary(name)
	if err != nil {
		t.Fatalf("testserver: server binary %q not found (searched %s): %v; %s",
			name, strings.Join(searched, ", "), err, installHint(name))
	}
	return path
}

// findBinary implements Binary's search. It returns where it looked, for the
// failure message.
func findBinary(name string) (path string, searched []string, err error) {
	if name == "" || strings.ContainsRune(name, filepath.Separator) {
		return "", nil, fmt.Errorf("invalid binary name %q", name)
	}
	var candidates []string
	if dir := os.Getenv(BinEnv); dir != "" {
		candidates = append(candidates, filepath.Join(dir, name))
	} else {
		searched = append(searched, "$"+BinEnv+" (unset)")
	}
	root, rootErr := RepoRoot()
	if rootErr == nil {
		candidates = append(candidates, filepath.Join(root, "bin", name))
	} else {
		searched = append(searched, "<repo root>/bin ("+rootErr.Error()+")")
	}
	for _, c := range candidates {
		searched = append(searched, c)
		if isExecutable(c) {
			abs, err := filepath.Abs(c)
			return abs, searched, err
		}
	}
	searched = append(searched, "$PATH")
	if p, err := exec.LookPath(name); err == nil {
		abs, err := filepath.Abs(p)
		return abs, searched, err
	}
	usrBin := filepath.Join("/usr/bin", name)
	searched = append(searched, usrBin)
	if isExecutable(usrBin) {
		return usrBin, searched, nil
	}
	return "", searched, errors.New("no executable file")
}

// installHint tells how to get the binary.
func installHint(name string) string {
	switch name {
	case "etcd", "consul":
		return "run ./scripts/test, which builds bin/" + name + " from the tools module (cd tools && go build -o ../bin/" + name + " ...)"
	case "redis-server":
		return "run ./scripts/test, which installs it (apt-get install -y redis-server)"
	default:
		return "run ./scripts/test, which installs every server the tests use"
	}
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}

var repoRoot = sync.OnceValues(findRepoRoot)

// RepoRoot returns the repository root: the nearest directory at or above the
// working directory whose go.mod declares module
// github.com/electionkit/election (nested modules such as tools/ and bench/
// are passed over). It fails if the working directory is outside the
// repository.
func RepoRoot() (string, error) { return repoRoot() }

func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if declaresModule(filepath.Join(dir, "go.mod"), modulePath) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s at or above the working directory", modulePath)
		}
		dir = parent
	}
}

// declaresModule reports whether the go.mod file at path declares module mod.
func declaresModule(path, mod string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == mod
		}
	}
	return false
}
