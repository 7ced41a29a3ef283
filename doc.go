// Package election is leader election and exclusive leases that work the
// same on etcd, Redis and Consul.
//
// An [Elector] runs elections for one process on one [Backend]; each
// [Candidate] campaigns in one election and runs leader-only [Handler]s
// while it leads. [Elector.Observe] follows an election without
// campaigning, and [TryLease] takes a one-shot exclusive lease.
//
// # Safety model
//
// Claims are atomic and exclusive; renewals and releases compare the
// owner's token atomically on the store. Every term carries a fencing
// token that strictly increases per election.
//
// A leader's handler context is cancelled no later than
//
//	(send time of the last successful renewal) + TTL − DriftMargin
//
// on the local monotonic clock, and at once when a renewal reports the
// claim gone or the watch shows a newer term. The store cannot expire the
// claim before (receive time of that renewal) + TTL on its own clock, which
// is later. So a leader that is paused, partitioned or simply slow steps
// down before the store can elect anyone else, as long as:
//
//   - the local clock does not run slower than the store's by more than
//     DriftMargin over one TTL (NTP-disciplined clocks drift by parts per
//     million; the default margin is 10% of the TTL);
//   - the process is not paused between checking its context and acting on
//     it (a GC or VM pause at that moment can still let one stale write
//     through): this is what fencing tokens are for. Pass [Term.Fence] to
//     the systems you write to and have them reject smaller fences;
//   - the store itself keeps its promises (see each backend's documented
//     guarantees: Redis replication is asynchronous, for one).
//
// Waiting candidates learn of a release from the store's push (etcd watch,
// Redis pub/sub, Consul blocking query) and of an expiry from the store's
// push or from a timer set to the holder's remaining TTL: never from
// fixed-interval polling. Where the store keeps a line of waiting claims
// ([Queuer]: etcd), a waiting candidate is already in it, so the store
// write that ends a term elects it and the push is all it waits for.
//
// # Lifecycle
//
// A [Candidate]'s life is one state machine ([State]; the pure transition
// function step and its diagram are in lifecycle.go), driven by one owner
// at a time (driver.go): an idle candidate has no goroutine of its own.
//
//	Idle ──Start──▶ Claiming ──won──────────────────────▶ Leading ──renewal fails──▶ Uncertain
//	                 ▲  │  │                                ▲ │  ▲                      │  │
//	     vacancy,    │  │  └─in line──▶ Queued ──first──────┘ │  └──────renewal ok──────┘  │
//	     retry timer │  │ taken, failed                       │                            │
//	                 │  ▼                                     │ Stop, Resign, Close, loss  │ deadline, loss
//	             Campaigning                                  ▼                            │
//	                 ▲                       SteppingDown ◀─────────────────────────────────┘
//	                 │             handlers cancelled; the claim is kept (and renewed)
//	                 │ after a loss                 │ last handler returned
//	                 └────────────────────── Releasing ──after Resign──▶ Resigned ──another leads,
//	                                                │                              or one TTL──▶ Claiming
//	                                                └──after Stop or Close──▶ Stopped
//
// Stop, Resign, Close and every loss share the one step-down path: the
// handlers' context is cancelled, and the claim is kept, and renewed while
// the store answers, until the last handler of the term returns; only then
// is it released by its token. A claim outlives its handlers, never the
// reverse. A Stop, Resign or Close whose context ends while handlers run
// returns an error wrapping [ErrHandlersRunning] and the release happens
// later ([Candidate.Done], [Elector.Done]). While renewals fail before the
// deadline the leader is [StateUncertain]; handlers that still run
// DriftMargin/2 past their term's deadline, when the store may elect
// another, are reported ([EventHandlerOverrun]). Every change of state is
// an [Event].
//
// Backends register by URL scheme ([Register]), the way database/sql
// drivers do. Backend authors prove their implementation with the
// conformance suite in package conformance.
package election
