package main

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/electionkit/election/examples/demostore"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Two replicas share one outbox: only the leader publishes; stopping it in
// a "deploy" hands the dispatcher to the other, and every message is
// published once, with fences that never go back.
func TestTwoReplicasHandOverTheDispatcher(t *testing.T) {
	for _, url := range []string{"", "memory://fxapp-test"} {
		t.Run("url="+url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			u, closeStore, err := demostore.URL(ctx, url, "fxapp-test")
			if err != nil {
				t.Fatal(err)
			}
			defer closeStore()
			out := &syncBuffer{}
			outbox := NewOutbox(out)
			a, b := NewApp(u, "replica-a", outbox), NewApp(u, "replica-b", outbox)
			if err := a.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if err := b.Start(ctx); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 5; i++ {
				outbox.Add()
			}
			waitPublished(t, outbox, 5)
			if err := a.Stop(ctx); err != nil { // the deploy
				t.Fatal(err)
			}
			for i := 0; i < 5; i++ {
				outbox.Add()
			}
			waitPublished(t, outbox, 10)
			if err := b.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			pubs := outbox.Published()
			if len(pubs) != 10 {
				t.Fatalf("%d publishes, want each of 10 messages once: %+v", len(pubs), pubs)
			}
			by := map[string]bool{}
			for i, p := range pubs {
				by[p.By] = true
				if p.Message != i+1 {
					t.Fatalf("publish %d is message %d: order or duplicates broken: %+v", i, p.Message, pubs)
				}
				if i > 0 && p.Fence < pubs[i-1].Fence {
					t.Fatalf("fence went back from %d to %d", pubs[i-1].Fence, p.Fence)
				}
			}
			if !by["replica-a"] || !by["replica-b"] {
				t.Fatalf("publishers %v: the dispatcher did not move to the other replica", by)
			}
		})
	}
}

func waitPublished(t *testing.T, o *Outbox, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(o.Published()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d messages published", len(o.Published()), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
