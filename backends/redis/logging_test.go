//go:build unix

package redis

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/testserver"
)

// A run against a server that is down prints nothing on the process's
// stderr (file descriptor 2, where go-redis's default logger writes), and
// go-redis's lines reach slog.Default as Debug records instead.
func TestGoRedisLinesGoToSlog(t *testing.T) {
	var logged syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)
	stderr := captureStderr(t)

	ctx := testContext(t, time.Minute)
	addr := "127.0.0.1:" + strconv.Itoa(testserver.FreePort(t)) // nothing listens there
	if _, err := OpenURL(ctx, mustParse(t, "redis://"+addr+"/?dial_timeout=300ms")); !errors.Is(err, election.ErrUnavailable) {
		t.Errorf("eager OpenURL with the server down: %v, want ErrUnavailable", err)
	}
	b, cfg, err := election.Open(ctx, "redis://"+addr+"/?lazy=true&ttl=2s")
	if err != nil {
		t.Fatal(err)
	}
	el, err := election.New(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := el.NewCandidate(election.CandidateConfig{Name: "quiet", ID: "q"})
	if err != nil {
		t.Fatal(err)
	}
	events := c.Events()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for failures := 0; failures < 2; {
		select {
		case ev := <-events:
			if ev.Kind == election.EventClaimFailed {
				failures++
			}
		case <-ctx.Done():
			t.Fatal("no two failed claims")
		}
	}
	if err := el.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	_ = election.CloseBackend(b)

	if out := stderr(); out != "" {
		t.Errorf("the run printed to stderr:\n%s", out)
	}
	if got := logged.String(); !strings.Contains(got, "level=DEBUG") || !strings.Contains(got, "connection pool: failed to dial") ||
		!strings.Contains(got, "component=go-redis") {
		t.Errorf("go-redis's dial failures did not reach slog.Default as Debug records; it got:\n%s", got)
	}
}

// captureStderr points file descriptor 2 at a temporary file until the
// returned function is called, which restores it and returns what was
// written.
func captureStderr(t *testing.T) func() string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	saved, err := unix.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Dup2(int(f.Fd()), 2); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restore := func() {
		once.Do(func() {
			_ = unix.Dup2(saved, 2)
			_ = unix.Close(saved)
		})
	}
	t.Cleanup(restore)
	return func() string {
		restore()
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
