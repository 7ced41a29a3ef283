package testserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeExecutable(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestBinaryPrefersEnvDir(t *testing.T) {
	dir := t.TempDir()
	want := filepath.Join(dir, "fake-server")
	writeExecutable(t, want)
	t.Setenv(BinEnv, dir)
	if got := Binary(t, "fake-server"); got != want {
		t.Errorf("Binary = %q, want %q", got, want)
	}
}

func TestBinaryFallsBackToPath(t *testing.T) {
	envDir := t.TempDir() // empty: the search goes on
	pathDir := t.TempDir()
	want := filepath.Join(pathDir, "fake-server-on-path")
	writeExecutable(t, want)
	// A non-executable file of that name in ELECTION_TEST_BIN is passed over.
	if err := os.WriteFile(filepath.Join(envDir, "fake-server-on-path"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(BinEnv, envDir)
	t.Setenv("PATH", pathDir)
	if got := Binary(t, "fake-server-on-path"); got != want {
		t.Errorf("Binary = %q, want %q", got, want)
	}
}

func TestBinaryMissingFailsNamingTheInstaller(t *testing.T) {
	t.Setenv(BinEnv, t.TempDir())
	t.Setenv("PATH", t.TempDir())
	msg := expectFatal(t, func(tb testing.TB) { Binary(tb, "etcd-that-does-not-exist") })
	if !strings.Contains(msg, "./scripts/test") || !strings.Contains(msg, "etcd-that-does-not-exist") {
		t.Errorf("Fatalf message = %q, want the name and ./scripts/test", msg)
	}
	msg = expectFatal(t, func(tb testing.TB) { Binary(tb, "../etcd") })
	if !strings.Contains(msg, "invalid binary name") {
		t.Errorf("Fatalf message for a path = %q, want it rejected", msg)
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("RepoRoot: %v", err)
	}
	if !declaresModule(filepath.Join(root, "go.mod"), modulePath) {
		t.Errorf("RepoRoot = %q, whose go.mod does not declare %s", root, modulePath)
	}
	wd, _ := os.Getwd()
	if rel, err := filepath.Rel(root, wd); err != nil || rel != filepath.Join("internal", "testserver") {
		t.Errorf("RepoRoot = %q; the package dir %q is not internal/testserver below it", root, wd)
	}
}

func TestDeclaresModuleIgnoresNestedModules(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "go.mod")
	if err := os.WriteFile(path, []byte("module github.com/electionkit/election/tools\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if declaresModule(path, modulePath) {
		t.Errorf("the tools module was taken for the repository root")
	}
}
