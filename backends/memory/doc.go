// Package memory is a complete in-process election store: TTLs, owner
// tokens, fencing, watches, fault controls and a record of every term, for
// unit tests, examples and seeded simulations.
//
// It is NOT for production: it lives in one process, so it cannot elect
// between processes, and it mimics the real stores' observable behaviour,
// not their implementation.
//
// # Expiry modes
//
// A [Store] behaves like one of the real stores, chosen with [WithExpiry]:
//
//   - [EtcdExpiry] (the default): claims belong to a session lease and live
//     as long as it is renewed; an expired session drops its claims and
//     watchers are told at once; a waiting candidate queues
//     ([election.Queuer]) and holds the election as soon as the claims
//     ahead of it end. Data survives Stop/Start and sessions get a fresh
//     TTL when the store starts again, as etcd extends leases on a leader
//     change. Unlike etcd, expiry is exact (no 500ms lessor tick) and TTLs
//     need not be whole seconds.
//   - [RedisExpiry]: there is no store-side session. Each claim is a key
//     with its own TTL, set by the claim and extended per claim by Renew
//     (token compared per claim). Expiry is not pushed: a watcher gets no
//     event when a key expires; every event and every [election.TakenError]
//     that shows a holder carries the key's remaining TTL (ExpiresIn).
//     Session.Close does no I/O and leaves claims to expire. Stop loses
//     every key, as a redis-server without persistence does, and after
//     Start every claim is refused for the claiming session's TTL (the
//     redis backend's default quarantine) with a TakenError whose Holder is
//     empty. Unlike the redis backend, a new Store is not quarantined (it
//     knows it lost nothing), fences count up from 1 instead of following
//     the server clock, and there are no replicas to lose writes.
//   - [ConsulExpiry]: a session with a TTL that the store invalidates at a
//     time drawn between TTL and 2×TTL after its last renewal (Consul may
//     keep a session up to 2×TTL), deleting its claims and telling
//     watchers. Data survives Stop/Start and the store restarts every
//     session's timer at 2×TTL, as a new Consul leader does. There is no
//     lock-delay (the consul backend's default) and no line of waiting
//     claims.
//
// In every mode fencing tokens come from a store-wide revision that never
// goes back, also across Stop/Start.
//
// # Faults
//
// Each [Client] is one process's connection: [Client.Cut] and [Client.Heal]
// partition it, [Client.SetLatency] delays its requests and responses, and
// [Client.Close] crashes it. The [Store] as a whole can be paused
// ([Store.Pause], [Store.Resume]) and killed ([Store.Stop], [Store.Start]).
// A delayed response whose context ends is lost after the store applied
// the operation: the caller gets [election.ErrUnavailable] for an operation
// that took effect, the "unknown outcome" the core must handle.
//
// # History
//
// [Store.Holds] lists every term the store granted, with how it ended, and
// [Store.Outages] every pause and stop, so a checker can verify that terms
// never overlap and fences increase, measured on the store's clock.
//
// # Determinism
//
// All timing uses the store's [election.Clock] (default
// [election.SystemClock], which inside a testing/synctest bubble is the
// bubble's fake time), and the only random choice (the Consul-like
// invalidation time) comes from the source given to [WithRand]. Nothing
// the package starts outlives what it serves: a watch's goroutine ends with
// its context (or after its error event), a latency timer with its
// operation, and expiry timers are stopped when their session or claim
// ends (or the store stops).
package memory
