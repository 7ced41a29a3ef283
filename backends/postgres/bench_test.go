package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/electionkit/election"
)

// BenchmarkRenew measures one Renew of a session's claims against a local
// postgres: one UPDATE of the session row, one round trip, whatever the
// count (the statement also lists the session's claims).
func BenchmarkRenew(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("claims=%d", n), func(b *testing.B) {
			srv := startServer(b)
			ctx := context.Background()
			backend := newBackend(b, ctx, serverURL(srv.Addr, nil))
			s := openSession(b, ctx, backend, time.Minute)
			claims := make([]election.Claim, n)
			for i := range claims {
				var err error
				if claims[i], err = s.Claim(ctx, request(fmt.Sprintf("bench-%04d", i), "a")); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if err := s.Renew(ctx, claims); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandoff measures a graceful handoff on the raw backend: from
// the holder's Release call to the waiter's claim succeeding, the waiter
// having learnt of the release from its watch (NOTIFY, then its claim).
// Holder and waiter use separate Backends (pools, listeners).
func BenchmarkHandoff(b *testing.B) {
	srv := startServer(b)
	ctx := context.Background()
	backends := []*Backend{newBackend(b, ctx, serverURL(srv.Addr, nil)), newBackend(b, ctx, serverURL(srv.Addr, nil))}
	sessions := []election.Session{openSession(b, ctx, backends[0], time.Minute), openSession(b, ctx, backends[1], time.Minute)}
	vacant := []chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}
	for i, be := range backends {
		_, err := be.Notify(ctx, "handoff", func(ev election.WatchEvent) {
			if ev.Leader == nil && ev.Err == nil {
				select {
				case vacant[i] <- struct{}{}:
				default:
				}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	<-vacant[0] // the first state, vacant, of both watches
	<-vacant[1]
	holder := 0
	held, err := sessions[0].Claim(ctx, request("handoff", "n0"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		waiter := 1 - holder
		select { // a vacancy left over from the release before last
		case <-vacant[waiter]:
		default:
		}
		if err := sessions[holder].Release(ctx, held); err != nil {
			b.Fatal(err)
		}
		<-vacant[waiter]
		if held, err = sessions[waiter].Claim(ctx, request("handoff", fmt.Sprintf("n%d", waiter))); err != nil {
			b.Fatal(err)
		}
		holder = waiter
	}
}

// BenchmarkQueuedHandoff measures a graceful handoff with a line: from
// the holder's Release call to the waiter's watch showing its own claim,
// which was waiting in line and is promoted by the release's transaction
// (no claim of its own). The old holder then joins the line again, out of
// the timing. Holder and waiter use separate Backends.
func BenchmarkQueuedHandoff(b *testing.B) {
	srv := startServer(b)
	ctx := context.Background()
	backends := []*Backend{newBackend(b, ctx, serverURL(srv.Addr, nil)), newBackend(b, ctx, serverURL(srv.Addr, nil))}
	sessions := []election.Queuer{
		openSession(b, ctx, backends[0], time.Minute).(election.Queuer),
		openSession(b, ctx, backends[1], time.Minute).(election.Queuer),
	}
	seen := []chan uint64{make(chan uint64, 16), make(chan uint64, 16)}
	for i, be := range backends {
		stop, err := be.Notify(ctx, "queued-handoff", func(ev election.WatchEvent) {
			if ev.Leader != nil && ev.Err == nil {
				select {
				case seen[i] <- ev.Leader.Fence:
				default:
				}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(stop)
	}
	token := 0
	enqueue := func(i int) election.Claim {
		token++
		c, _, err := sessions[i].Enqueue(ctx, request("queued-handoff", fmt.Sprintf("n%d-%d", i, token)))
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	holder := 0
	held, next := enqueue(0), enqueue(1)
	for b.Loop() {
		waiter := 1 - holder
		if err := sessions[holder].(election.Session).Release(ctx, held); err != nil {
			b.Fatal(err)
		}
		for f := range seen[waiter] {
			if f == next.Fence {
				break
			}
		}
		b.StopTimer()
		held, next = next, enqueue(holder)
		holder = waiter
		b.StartTimer()
	}
}
