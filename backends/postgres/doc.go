// Package postgres is an election backend on PostgreSQL, through pgx v5.
// Import it for its side effect to register the postgres:// and
// postgresql:// schemes with election.Open.
//
// The store is two tables and a sequence under a configurable schema and
// table prefix (schema.sql; created at Open unless Config.NoCreate): a
// session row per elector whose expires_at is set and judged by the
// server's clock_timestamp(), and a row per election naming the holder's
// session, a SHA-256 of its owner token, its fence and its metadata.
//
//   - Claim is one statement: it takes the election if vacant, or if its
//     holder's session row has expired (deleting that row, so that a
//     renewal racing with it either commits first and is seen, or finds the
//     row gone) or is gone; the fence is the sequence's next value and
//     never below the election's last fence.
//   - Renew is one UPDATE of the session row per interval whatever the
//     number of claims, refused once the row has expired; it runs on a
//     connection of its own, so a busy pool cannot starve it.
//   - Release vacates the election's row if it holds the token's hash.
//   - Claims and releases NOTIFY the prefix's one channel in the same
//     statement; one listening connection per Backend serves every watch.
//     Expiry writes nothing: a watch event with a holder carries its
//     remaining TTL, at which the core reads again.
//
// The pool may be a transaction-mode PgBouncer (statements use pgx's exec
// or simple-protocol mode and keep no session state); the listening
// connection must reach Postgres directly (Config.ListenConnString), which
// Open checks with a NOTIFY of its own.
//
// See the package README for the guarantees and what it cannot promise.
package postgres
