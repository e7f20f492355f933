-- redrive schema 4: one open record per (event, handler).
-- A source that delivers an event again after a crash (the outbox, a broker) fails it again;
-- that failure joins the open record instead of adding a second one (Store.add). Open
-- duplicates recorded before this schema are closed: all but the newest of each pair become
-- 'discarded', with a history entry naming the record they duplicate.
UPDATE redrive_dead_letters AS d
SET status = 'discarded',
    updated_at = substr(strftime('%Y-%m-%dT%H:%M:%f', 'now'), 1, 23) || '000Z',
    next_attempt_at = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL,
    history = json_insert(d.history, '$[#]', json_object(
        'kind', 'discard',
        'at', substr(strftime('%Y-%m-%dT%H:%M:%f', 'now'), 1, 23) || '000Z',
        'detail', json_object('actor', 'redrive', 'note', 'duplicate of ' || k.keep)))
FROM (
    SELECT event_id, handler, MAX(id) AS keep FROM redrive_dead_letters
    WHERE status IN ('scheduled', 'retrying', 'dead')
    GROUP BY event_id, handler HAVING COUNT(*) > 1
) AS k
WHERE d.event_id = k.event_id AND d.handler = k.handler AND d.id <> k.keep
  AND d.status IN ('scheduled', 'retrying', 'dead');

CREATE UNIQUE INDEX redrive_dl_open_once ON redrive_dead_letters (event_id, handler)
    WHERE status IN ('scheduled', 'retrying', 'dead');
