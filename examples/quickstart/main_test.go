package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestQuickstart(t *testing.T) {
	for _, url := range []string{"", "memory://quickstart-test"} {
		t.Run("url="+url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
			defer cancel()
			var out bytes.Buffer
			if err := run(ctx, &out, url, "quickstart", "node-1"); err != nil {
				t.Fatalf("run: %v", err)
			}
			for _, want := range []string{"node-1 leads \"quickstart\" with fence", "node-1 working", "node-1 stops leading"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}
