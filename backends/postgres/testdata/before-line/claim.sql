WITH cur AS (
    SELECT session_id FROM public.election_claims WHERE name = $1 AND session_id IS NOT NULL
), dead AS (
    DELETE FROM public.election_sessions s USING cur
    WHERE s.id = cur.session_id AND s.expires_at <= clock_timestamp()
    RETURNING s.id
), gone AS (
    SELECT cur.session_id AS id FROM cur
    WHERE NOT EXISTS (SELECT 1 FROM public.election_sessions s WHERE s.id = cur.session_id)
), mine AS (
    SELECT id FROM public.election_sessions WHERE id = $2 AND expires_at > clock_timestamp()
), up AS (
    INSERT INTO public.election_claims AS c (name, fence, session_id, token_hash, holder_id, metadata, format)
    SELECT $1, nextval('public.election_fences'), mine.id, $3, $4, $5::jsonb, 1 FROM mine
    ON CONFLICT (name) DO UPDATE SET
        fence = CASE WHEN c.session_id = excluded.session_id AND c.token_hash = excluded.token_hash
                THEN c.fence ELSE greatest(excluded.fence, c.fence + 1) END,
        session_id = excluded.session_id, token_hash = excluded.token_hash,
        holder_id = excluded.holder_id, metadata = excluded.metadata, format = excluded.format
    WHERE c.session_id IS NULL
       OR (c.session_id = excluded.session_id AND c.token_hash = excluded.token_hash)
       OR c.session_id IN (SELECT id FROM dead)
       OR c.session_id IN (SELECT id FROM gone)
    RETURNING c.fence
)
SELECT 'ok', up.fence, pg_notify($6, format('{"v":1,"kind":"claim","name":%s,"fence":%s}', to_json($1::text)::text, up.fence))::text FROM up
UNION ALL
SELECT 'nosession', 0, '' WHERE NOT EXISTS (SELECT 1 FROM mine)
