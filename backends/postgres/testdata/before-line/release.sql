WITH r AS (
    UPDATE public.election_claims c SET session_id = NULL, token_hash = NULL, holder_id = NULL, metadata = NULL, format = 1
    WHERE c.name = $1 AND c.token_hash = $2
      AND EXISTS (SELECT 1 FROM public.election_sessions s WHERE s.id = c.session_id AND s.expires_at > clock_timestamp())
    RETURNING c.fence
)
SELECT r.fence, pg_notify($3, format('{"v":1,"kind":"release","name":%s,"fence":%s}', to_json($1::text)::text, r.fence))::text FROM r
