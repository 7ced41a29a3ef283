package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// BenchmarkRenew measures one Renew of a session's claims against a local
// redis-server: one round trip whatever the count.
func BenchmarkRenew(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("claims=%d", n), func(b *testing.B) {
			srv := startServer(b)
			ctx := context.Background()
			backend, err := New(srv.client(b), Config{NoQuarantine: true})
			if err != nil {
				b.Fatal(err)
			}
			defer backend.Close()
			s, err := backend.OpenSession(ctx, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			claims := make([]election.Claim, n)
			for i := range claims {
				if claims[i], err = s.Claim(ctx, request(fmt.Sprintf("bench-%04d", i), "a")); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Renew(ctx, claims); err != nil { // loads the script
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if err := s.Renew(ctx, claims); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
