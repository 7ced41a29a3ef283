// Package redis is the Redis backend of github.com/electionkit/election,
// built on github.com/redis/go-redis/v9. It works with a single server, a
// Sentinel-managed primary and a Redis Cluster.
//
// Import it for its side effect to open it by URL, the way database/sql
// drivers register:
//
//	import _ "github.com/electionkit/election/backends/redis"
//
//	// redis://user:pass@host:6379/0?prefix=myapp&dial_timeout=2s
//	// rediss://host:6380/?prefix=myapp
//
// or build it around a client you own with [New].
//
// # Safety model
//
// Redis has no server-side session: a claim is a key that expires by itself.
// Every store operation is one Lua script, so each check-and-act is atomic on
// the primary that owns the election's keys:
//
//   - Claim: SET leader-key value NX PX ttl, issuing the fencing token and
//     publishing the new holder on the election's channel.
//   - Renew: per claim, compare the owner token and PEXPIRE, for all claims
//     of a session in one script (one pipeline of per-claim scripts on a
//     Cluster): one round trip whatever the number of claims.
//   - Release: compare the owner token, DEL, publish the vacancy.
//
// Fencing tokens come from the server clock: a claim's fence is
// max(previous fence + 1, TIME in microseconds). They strictly increase
// even when Redis restarts empty (no persistence, FLUSHALL), as long as the
// server's clock does not step back by more than the quarantine plus the
// downtime.
//
// A Redis that restarts empty has forgotten the leader, while the old leader
// still acts until its local deadline (at most its last renewal plus TTL).
// Each election therefore keeps a small marker hash that records when the
// store first saw it; while the server's TIME is less than that marker plus
// the quarantine (by default the claiming session's TTL), claims are refused
// with a *[election.TakenError] whose Holder has an empty ID and fence 0 and
// whose ExpiresIn is the remaining quarantine. The old leader's deadline is
// before restart + TTL ≤ marker + TTL, so two leaders never overlap. The
// price: the first claim of an election on an empty Redis waits one TTL.
//
// What Redis cannot promise:
//
//   - Replication is asynchronous. If a primary fails after a claim or a
//     renewal but before its replica got it, the promoted replica may have
//     no leader key, or an older expiry, while the marker survives: no
//     quarantine applies and two leaders can overlap for up to one TTL.
//     [Config.WaitReplicas] (WAIT after each claim and renewal) narrows this
//     window on a single primary with replicas; it does not close it.
//   - Expiry is measured by the wall clock of the primary. A forward step of
//     that clock shortens every TTL (and the quarantine).
//   - Redis does not announce expiries and keyspace notifications are not
//     required: watchers learn the remaining TTL of the holder
//     ([election.WatchEvent].ExpiresIn, [election.TakenError].ExpiresIn) and
//     the core claims again when it elapses.
//   - maxmemory-policy must be noeviction: an evicted leader key is a lost
//     leader that no quarantine covers.
//   - Keys under the prefix must be written only by this package.
package redis
