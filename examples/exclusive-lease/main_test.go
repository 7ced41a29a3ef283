package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestExclusiveLease(t *testing.T) {
	for _, url := range []string{"", "memory://exclusive-lease-test"} {
		t.Run("url="+url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var out bytes.Buffer
			if err := run(ctx, &out, url); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			text := out.String()
			if n := strings.Count(text, "took the lease"); n != 1 {
				t.Errorf("%d workers took the lease, want 1:\n%s", n, text)
			}
			if n := strings.Count(text, "skipped"); n != 2 {
				t.Errorf("%d workers skipped, want 2:\n%s", n, text)
			}
			for _, want := range []string{"batch 4 written", "job done", "the lease is free again"} {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q:\n%s", want, text)
				}
			}
		})
	}
}
