WITH s AS (
    DELETE FROM public.election_sessions WHERE id = $1
), v AS (
    UPDATE public.election_claims SET session_id = NULL, token_hash = NULL, holder_id = NULL, metadata = NULL, format = 1
    WHERE session_id = $1 RETURNING name, fence
)
SELECT pg_notify($2, format('{"v":1,"kind":"release","name":%s,"fence":%s}', to_json(v.name)::text, v.fence))::text FROM v
