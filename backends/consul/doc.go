// Package consul is the Consul backend of github.com/electionkit/election,
// built on github.com/hashicorp/consul/api.
//
// Import it for its side effect to open it by URL, the way database/sql
// drivers register:
//
//	import _ "github.com/electionkit/election/backends/consul"
//
//	// consul://127.0.0.1:8500?dc=dc1&prefix=myapp&token_file=/etc/consul.token
//
// or build it from a [Config] with [New]. The CONSUL_HTTP_* environment
// variables work as with the consul CLI; explicit settings override them.
//
// # Safety model
//
// Each [election.Session] is one Consul session with a TTL, no health checks
// and behavior "delete", created on the prefix's own catalog node
// ([Backend.SessionNode]) rather than the agent's, so that no agent leaving
// the cluster (consul leave, SIGTERM, force-leave) ends it. A claim is one transaction that checks the
// election's key is absent and locks it with the session; the key lives as
// long as the session. Renew is one session renewal plus one consistent read
// of the session's marker key (which a release by token elsewhere deletes),
// whatever the number of claims. The fencing token of a term is the
// ModifyIndex of its lock: a Raft index, so fences of one election strictly
// increase across releases, re-claims, deletions and server restarts that
// keep the data directory. Watches share one blocking query per bucket of
// elections (32 buckets, part of the stored format: docs/record-format.md).
//
// What Consul measures and what it cannot promise:
//
//   - Session TTLs must lie between the servers' session_ttl_min (10s by
//     default; [Config.MinTTL] tells the backend a lowered value) and 24h.
//     A TTL outside that range is rejected, never rounded.
//   - The Consul leader invalidates a session between its TTL and 2× its
//     TTL after the last renewal, plus timer and Raft latency; with the
//     lock-delay after it, takeover after a crash takes about 2×TTL
//     (2×MinTTL + TTL when TTL/2 < MinTTL). The core's leader steps down at
//     (last renewal sent) + TTL − DriftMargin.
//   - The lock-delay is the TTL by default ([Config.LockDelay]), and the
//     Consul session's TTL is TTL/2: a session ended early (by an operator,
//     or by Consul 1.22's stale invalidation retry, see the README) elects
//     no one before the old leader's deadline. [NoLockDelay] gives that up
//     for takeover one lock-delay sooner.
//   - When the Consul leader changes or restarts, the new leader restarts
//     every session timer at 2×TTL: expiry is late, never early.
//   - Time is measured by the Consul leader's clock alone; client and server
//     clocks need not agree, but a paused leader expires nothing while
//     paused.
//   - A cluster that loses its Raft data (a -dev agent restarted, a cluster
//     rebuilt from scratch) starts its indexes again: fences are monotonic
//     only for the life of one cluster's data.
//   - Keys under the prefix must be written only by this package: a foreign
//     write to an election key changes its value or its fence. A value no
//     session locks holds nothing; a plain put over a held key is deleted
//     by the holder's session at its next renewal, so no such write holds
//     an election for ever.
//   - Consul's ACLs on the prefix and the session node are the trust
//     boundary: owner tokens and session IDs are readable by anyone who may
//     read the prefix (see the README's trust model).
package consul
