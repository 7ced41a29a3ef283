package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// The demo runs end to end on the embedded default and on a URL, and its
// timeline tells the story it promises: a crash takeover, the old leader
// stopping first, a graceful handoff, and no stale write accepted.
func TestFailoverDemo(t *testing.T) {
	for _, url := range []string{"", "memory://failover-demo-test"} {
		t.Run("url="+url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var out bytes.Buffer
			if err := run(ctx, &out, url, time.Second); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			text := out.String()
			for _, want := range []string{"CRASH", "takeover by", "stopped acting", "before", "GRACEFUL", "handoff to", "0 rejected as stale"} {
				if !strings.Contains(text, want) {
					t.Errorf("timeline lacks %q:\n%s", want, text)
				}
			}
		})
	}
}
