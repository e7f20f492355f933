-- redrive schema 4 (PostgreSQL): the timeline counts first deaths and re-deaths apart.
-- A replay that dies again is not a new dead letter: `n` counts records that died for the
-- first time (replays = 0), `redead` those that died again after a replay. Rates, charts
-- and the `rate` alert rule read `n`; operators see both.
ALTER TABLE redrive_dead_timeline ADD COLUMN redead bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION redrive_on_insert() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO redrive_counts AS c (topic, status, n)
    SELECT topic, status, count(*) FROM new_rows GROUP BY topic, status ORDER BY topic, status
    ON CONFLICT (topic, status) DO UPDATE SET n = c.n + excluded.n;
    INSERT INTO redrive_dead_timeline AS t (minute, topic, n, redead)
    SELECT date_trunc('minute', dead_at), topic, count(*) FILTER (WHERE replays = 0),
           count(*) FILTER (WHERE replays > 0) FROM new_rows
    WHERE status = 'dead' GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (minute, topic) DO UPDATE SET n = t.n + excluded.n, redead = t.redead + excluded.redead;
    IF EXISTS (SELECT 1 FROM new_rows WHERE status = 'scheduled') THEN
        PERFORM pg_notify(left('redrive_' || TG_TABLE_SCHEMA, 63), '');
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION redrive_on_update() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO redrive_counts AS c (topic, status, n)
    SELECT topic, status, sum(n) FROM (
        SELECT topic, status, -count(*) AS n FROM old_rows GROUP BY topic, status
        UNION ALL
        SELECT topic, status, count(*) AS n FROM new_rows GROUP BY topic, status
    ) AS deltas GROUP BY topic, status HAVING sum(n) <> 0 ORDER BY topic, status
    ON CONFLICT (topic, status) DO UPDATE SET n = c.n + excluded.n;
    INSERT INTO redrive_dead_timeline AS t (minute, topic, n, redead)
    SELECT date_trunc('minute', nr.dead_at), nr.topic, count(*) FILTER (WHERE nr.replays = 0),
           count(*) FILTER (WHERE nr.replays > 0)
    FROM new_rows AS nr JOIN old_rows AS o USING (id)
    WHERE nr.status = 'dead' AND o.status <> 'dead' GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (minute, topic) DO UPDATE SET n = t.n + excluded.n, redead = t.redead + excluded.redead;
    IF EXISTS (
        SELECT 1 FROM new_rows AS nr JOIN old_rows AS o USING (id)
        WHERE nr.status = 'scheduled' AND o.status <> 'scheduled'
    ) THEN
        PERFORM pg_notify(left('redrive_' || TG_TABLE_SCHEMA, 63), '');
    END IF;
    RETURN NULL;
END $$;
