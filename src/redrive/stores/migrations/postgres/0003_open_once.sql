-- redrive schema 3 (PostgreSQL): one open record per (event, handler).
-- A source that delivers an event again after a crash (the outbox, a broker) fails it again;
-- that failure joins the open record instead of adding a second one (Store.add). Open
-- duplicates recorded before this schema are closed: all but the newest of each pair become
-- 'discarded', with a history entry naming the record they duplicate.
UPDATE redrive_dead_letters AS d
SET status = 'discarded',
    updated_at = now(),
    next_attempt_at = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL,
    history = d.history || jsonb_build_array(jsonb_build_object(
        'kind', 'discard',
        'at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'detail', jsonb_build_object('actor', 'redrive', 'note', 'duplicate of ' || k.keep)))
FROM (
    SELECT event_id, handler, max(id) AS keep FROM redrive_dead_letters
    WHERE status IN ('scheduled', 'retrying', 'dead')
    GROUP BY event_id, handler HAVING count(*) > 1
) AS k
WHERE d.event_id = k.event_id AND d.handler = k.handler AND d.id <> k.keep
  AND d.status IN ('scheduled', 'retrying', 'dead');

CREATE UNIQUE INDEX redrive_dl_open_once ON redrive_dead_letters (event_id, handler)
    WHERE status IN ('scheduled', 'retrying', 'dead');
