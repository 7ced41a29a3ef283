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
// A session is a key with a PX expiry; a claim is a key (without expiry)
// that names its session, and is valid only while that session key exists.
// Every store operation is one Lua script, atomic on the primary that owns
// the prefix's keys (all of them share one hash tag):
//
//   - Claim: take the election if it has no claim, or a claim whose
//     session key is gone; issue the fencing token; publish the new holder
//     on the prefix's one channel.
//   - Renew: PEXPIRE the session key, failing if it is gone: one script
//     whatever the number of claims. A claim released by another session
//     is reported from the session's lost set by the same script; one
//     deleted behind the library's back and claimed again is known from
//     the announcement of the newer term.
//   - Release: compare the owner token, DEL, publish the vacancy.
//
// Fencing tokens come from the server clock: a claim's fence is
// max(previous fence + 1, TIME in microseconds, the claiming Backend's
// floor + 1), the floor being the highest fence that Backend has seen in
// any election of its prefix. They strictly increase even when Redis
// restarts empty (no persistence) and the counter is lost, as long as the
// server's clock has not stepped back by more than the quarantine plus
// the downtime, or the claimer saw the last fence (a candidate that
// watched the election did).
//
// A Redis that restarts empty has forgotten the leader, while the old leader
// still acts until its local deadline (at most its last renewal plus TTL,
// and that renewal happened before the restart). So every claim is refused
// while the server's TIME is less than its start time (TIME minus INFO
// uptime_in_seconds, plus a second for rounding) plus the quarantine, by
// default the claiming session's TTL. A refused claim gets a
// *[election.TakenError] whose Holder has an empty ID and fence 0 and whose
// ExpiresIn is the rest of the quarantine; [Backend.Leader] and
// [Backend.Watch] show the election vacant meanwhile. Since the old
// leader's deadline is before restart + TTL ≤ start + TTL, two leaders never
// overlap. The price: for one TTL after redis-server starts (up to two
// seconds more: Redis reports uptime in whole seconds, so the start is
// estimated conservatively), nobody is elected. A server that has been up
// longer elects at once, also for elections it never saw.
//
// Watching: one subscription per Backend, to its prefix's channel, shared
// by every watch. Redis announces no expiry and keyspace notifications are
// not used: the Backend keeps one timer per session that holds a watched
// election, at that session's remaining TTL, and reports the vacancy itself
// when the session is gone, so watch events carry no ExpiresIn. Every
// confirmation of the subscription (after a reconnection too) re-reads
// every watched election, because pub/sub drops what is published while a
// subscriber is away.
//
// What Redis cannot promise:
//
//   - Replication is asynchronous. If a primary fails after a claim or a
//     renewal but before its replica got it, the promoted replica (long up,
//     so out of quarantine) may have no claim, or an older session expiry:
//     two leaders can overlap for up to one TTL. [Config.WaitReplicas]
//     (WAIT after each claim and renewal) narrows this window on a single
//     primary with replicas; it does not close it.
//   - FLUSHALL, FLUSHDB or deleting keys under the prefix while leaders run
//     is a lost leader no quarantine covers (the server did not restart). A
//     deleted claim key is noticed by its holder only once another session
//     claims the election.
//   - Expiry is measured by the wall clock of the primary. A forward step of
//     that clock shortens every TTL (and the quarantine). A step back
//     lengthens the quarantine by the step (Redis counts uptime on the
//     wall clock).
//   - maxmemory-policy must be noeviction: an evicted key is a lost leader
//     that no quarantine covers.
//   - On a Cluster, all elections of a prefix live in one hash slot.
//   - Keys under the prefix must be written only by this package (or by a
//     later format of it; see docs/record-format.md).
package redis
