// Package etcd is the etcd v3 backend of github.com/electionkit/election.
//
// Import it for its side effect to open it by URL, the way database/sql
// drivers register:
//
//	import _ "github.com/electionkit/election/backends/etcd"
//
//	// etcd://host1:2379,host2:2379/myapp?dial_timeout=2s
//
// or build it from a [Config] with [New].
//
// # Safety model
//
// Each [election.Session] is one etcd lease. Every claim is an entry: a key
// attached to that lease under its election's range (Prefix + "/" +
// escaped name + "%00", then the lease ID and a sequence number), so it
// lives exactly as long as the lease. The holder of an election is its entry
// with the lowest create revision. A claim is one transaction that writes
// an entry only if the range is empty. A candidate waiting for the
// election writes its entry in any case ([election.Queuer]): it is then in
// line, and the write that deletes the holder's entry (a release, a lease
// revoke or expiry) makes the next entry the holder at that same revision,
// as etcd's own concurrency.Election does, so a handoff costs one write
// and one watch notification. Renew is one lease keep-alive, whatever the
// number of claims: a claim whose entry was deleted or overwritten by
// anyone is known from the Backend's one shared watch of the prefix, which
// Renew lets catch up to the keep-alive's revision, so it is reported lost
// by the first renewal after the delete. Values are record format 1
// (docs/record-format.md); an entry that is not a record holds its
// election for an unknown writer, never leaves it vacant. The
// fencing token of a term is its entry's create revision: etcd's revision
// counter is cluster-wide, persisted in the raft log and never reused, and
// each new holder's entry was created after its predecessor's, so fences
// of one election strictly increase, also across server restarts.
//
// What etcd measures and what it cannot promise:
//
//   - Lease TTLs are whole seconds. A TTL that is not a whole number of
//     seconds is rejected with [election.ErrInvalidArgument], never rounded.
//   - etcd raises a TTL below its minimum (1.5 × election timeout, rounded up
//     to a second: 2s with default server flags); [election.Session.TTL]
//     reports the TTL etcd granted.
//   - The leader's lessor checks for expired leases every 500ms, and a
//     revoke goes through raft, so a claim disappears up to about a second
//     after its TTL on a healthy cluster.
//   - When the etcd leader changes, the new leader extends every lease by a
//     full TTL (plus the election timeout): expiry is late, never early.
//   - Time is measured by the etcd leader's clock; client and server clocks
//     need not agree, but a leader paused (SIGSTOP, VM freeze) does not
//     expire anything while paused.
//   - Keys under the prefix must be written only by this package: a foreign
//     Put on an election key can change its lease or value.
package etcd
