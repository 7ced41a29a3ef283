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
// Each [election.Session] is one etcd lease. A claim is one transaction that
// creates the election's key, attached to that lease, only if the key does not
// exist; the key lives exactly as long as the lease. Renew is one lease
// keep-alive plus one read of the keys attached to the lease, whatever the
// number of claims. The fencing token of a term is the key's create
// revision: etcd's revision counter is cluster-wide, persisted in the raft
// log and never reused, so fences of one election strictly increase, also
// across server restarts.
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
