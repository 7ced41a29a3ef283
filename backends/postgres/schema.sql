-- The schema of backends/postgres for the default names (Config.Schema
-- "public", Config.TablePrefix "election_"), record format 1
-- (docs/record-format.md). Open runs exactly this (for its own schema and
-- prefix, see postgres.Schema) unless Config.NoCreate (URL no_create=true);
-- teams that manage their schema with migrations apply it themselves, then
-- grant the role the backend connects as SELECT, INSERT, UPDATE, DELETE on
-- the three tables and USAGE on the sequence. It is idempotent: applied to
-- a schema made by an earlier version, it adds the line table (queue).
--
-- The backend also uses, without creating anything for it, the NOTIFY
-- channel "public.election_events".

CREATE SCHEMA IF NOT EXISTS public;

-- The fencing token of each new term: nextval, and never below the last
-- fence of the election's own row.
CREATE SEQUENCE IF NOT EXISTS public.election_fences;

-- One row per live session (Backend.OpenSession). expires_at is set and
-- compared with the server's clock_timestamp(), never a client's clock.
CREATE TABLE IF NOT EXISTS public.election_sessions (
    id         text        PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    ttl_us     bigint      NOT NULL,
    format     integer     NOT NULL
);

-- One row per election name ever claimed. session_id, token_hash,
-- holder_id and metadata are NULL while the election is vacant; fence
-- stays, as the floor of the next term's fence. A claim whose session row
-- is gone or expired is vacant.
CREATE TABLE IF NOT EXISTS public.election_claims (
    name       text    PRIMARY KEY,
    fence      bigint  NOT NULL,
    session_id text,
    token_hash bytea,
    holder_id  text,
    metadata   jsonb,
    format     integer NOT NULL
);

CREATE INDEX IF NOT EXISTS election_claims_session ON public.election_claims (session_id);

-- The line of waiting claims (election.Queuer), in fence order per
-- election: the fence is drawn when the claim joins the line, above the
-- election's last fence and every fence already in line. The statement
-- that ends a term (a release, a session's close, or the first statement
-- to find the holder's session expired) makes the first live claim in
-- line the holder, with that fence. Builds before this table ignore it.
CREATE TABLE IF NOT EXISTS public.election_queue (
    name       text    NOT NULL,
    fence      bigint  NOT NULL,
    session_id text    NOT NULL,
    token_hash bytea   NOT NULL,
    holder_id  text,
    metadata   jsonb,
    format     integer NOT NULL,
    PRIMARY KEY (name, fence)
);

CREATE INDEX IF NOT EXISTS election_queue_session ON public.election_queue (session_id);
