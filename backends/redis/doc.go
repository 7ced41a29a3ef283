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
// even when Redis restarts empty (no persistence) and the counter is lost,
// as long as the server's clock does not step back by more than the
// quarantine plus the downtime.
//
// A Redis that restarts empty has forgotten the leader, while the old leader
// still acts until its local deadline (at most its last renewal plus TTL,
// and that renewal happened before the restart). So every claim is refused
// while the server's TIME is less than its start time (TIME minus INFO
// uptime_in_seconds, plus a second for rounding) plus the quarantine, by default the claiming session's
// TTL. A refused claim gets a *[election.TakenError] whose Holder has an
// empty ID and fence 0 and whose ExpiresIn is the rest of the quarantine;
// [Backend.Leader] and [Backend.Watch] show the election vacant meanwhile.
// Since the old leader's deadline is before restart + TTL ≤ start + TTL,
// two leaders never overlap. The price: for one TTL after redis-server
// starts (up to two seconds more: Redis reports uptime in whole seconds, so
// the start is estimated conservatively), nobody is elected. A server that has been up longer elects at once, also for
// elections it never saw.
//
// What Redis cannot promise:
//
//   - Replication is asynchronous. If a primary fails after a claim or a
//     renewal but before its replica got it, the promoted replica (long up,
//     so out of quarantine) may have no leader key, or an older expiry: two
//     leaders can overlap for up to one TTL. [Config.WaitReplicas] (WAIT
//     after each claim and renewal) narrows this window on a single primary
//     with replicas; it does not close it.
//   - FLUSHALL, FLUSHDB or deleting keys under the prefix while leaders run
//     is a lost leader no quarantine covers (the server did not restart).
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
