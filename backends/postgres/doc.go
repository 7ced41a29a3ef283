// Package postgres is an election backend on PostgreSQL, through pgx v5.
// Import it for its side effect to register the postgres:// and
// postgresql:// schemes with election.Open.
//
// The store is three tables and a sequence under a configurable schema
// and table prefix (schema.sql; created at Open unless Config.NoCreate): a
// session row per elector whose expires_at is set and judged by the
// server's clock_timestamp(), a row per election naming the holder's
// session, a SHA-256 of its owner token, its fence and its metadata, and
// the line of waiting claims ([election.Queuer]).
//
//   - Claim, Enqueue, Release and Session.Close are each one round trip
//     and one transaction (line.go): lock the elections' rows, settle
//     (delete the session rows of holders and waiters found expired, so
//     that a renewal racing with it either commits first and is seen, or
//     finds the row gone; make the first live claim in line the holder
//     wherever the holder is gone, expired, released or closing), then
//     take the election, join its line, or end the claim. A fence is the
//     sequence's next value, never below the election's last fence or a
//     fence in line; a claim in line keeps the fence it joined with.
//   - Renew is one UPDATE of the session row per interval whatever the
//     number of claims, refused once the row has expired; it runs on a
//     connection of its own, so a busy pool cannot starve it.
//   - Claims, promotions and releases NOTIFY the prefix's one channel in
//     the same transaction; one listening connection per Backend serves
//     every watch. Expiry writes nothing: the Backend keeps one timer per
//     session holding a watched election, at its remaining TTL, and reads
//     the elections it held once it has expired (a read that finds the
//     holder expired while claims wait in line settles the election
//     first), so watch events carry no ExpiresIn.
//
// The pool may be a transaction-mode PgBouncer (statements use pgx's exec
// or simple-protocol mode and keep no session state); the listening
// connection must reach Postgres directly (Config.ListenConnString), which
// Open checks with a NOTIFY of its own.
//
// See the package README for the guarantees and what it cannot promise.
package postgres
