-- redrive schema 1 (PostgreSQL): dead letters, counts and timeline kept by triggers,
-- audit, meta. Runs with search_path set to the store's schema; the functions keep that
-- search_path (SET search_path FROM CURRENT) so triggers work from any session.

-- Text search on large tables: trigram indexes serve ILIKE '%...%'.
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;  -- one per database: every schema uses it

CREATE TABLE redrive_dead_letters (
    id               text COLLATE "C" PRIMARY KEY,  -- UUIDv7: byte order is time order
    event_id         text NOT NULL,
    topic            text NOT NULL,
    handler          text NOT NULL,
    status           text NOT NULL,
    payload          jsonb NOT NULL,
    key              text,
    headers          jsonb NOT NULL DEFAULT '{}',
    correlation_id   text,
    source           text,
    tenant_id        text,
    occurred_at      timestamptz NOT NULL,
    attempts         integer NOT NULL,
    max_attempts     integer NOT NULL,
    error_type       text NOT NULL,
    error_message    text NOT NULL,
    traceback        text NOT NULL,
    fingerprint      text NOT NULL,
    history          jsonb NOT NULL DEFAULT '[]',
    origin           jsonb NOT NULL DEFAULT '{}',
    consumer         jsonb NOT NULL DEFAULT '{}',
    version          text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    next_attempt_at  timestamptz,
    dead_at          timestamptz,
    resolved_at      timestamptz,
    replays          integer NOT NULL DEFAULT 0,
    lease_owner      text,
    lease_expires_at timestamptz
);
-- Listing is newest first by id, filtered by one of these (each ends in id for the keyset).
CREATE INDEX redrive_dl_status ON redrive_dead_letters (status, id);
CREATE INDEX redrive_dl_topic ON redrive_dead_letters (topic, status, id);
CREATE INDEX redrive_dl_fingerprint ON redrive_dead_letters (fingerprint, status, id);
CREATE INDEX redrive_dl_handler ON redrive_dead_letters (handler, id);
CREATE INDEX redrive_dl_error_type ON redrive_dead_letters (error_type, id);
CREATE INDEX redrive_dl_tenant ON redrive_dead_letters (tenant_id, id) WHERE tenant_id IS NOT NULL;
CREATE INDEX redrive_dl_correlation ON redrive_dead_letters (correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX redrive_dl_version ON redrive_dead_letters (version, id) WHERE version IS NOT NULL;
CREATE INDEX redrive_dl_created ON redrive_dead_letters (created_at);
-- The scheduler's claims (partial: only the few rows that can be claimed are indexed).
CREATE INDEX redrive_dl_due ON redrive_dead_letters (next_attempt_at) WHERE status = 'scheduled';
CREATE INDEX redrive_dl_lease ON redrive_dead_letters (lease_expires_at) WHERE status = 'retrying';
-- The oldest dead letter per topic, and purges by age.
CREATE INDEX redrive_dl_dead_at ON redrive_dead_letters (status, topic, dead_at);
CREATE INDEX redrive_dl_updated ON redrive_dead_letters (status, updated_at);
CREATE INDEX redrive_dl_message_trgm ON redrive_dead_letters USING gin (error_message gin_trgm_ops);
CREATE INDEX redrive_dl_payload_trgm ON redrive_dead_letters USING gin ((payload::text) gin_trgm_ops);

-- Counts by topic and status, kept exact by statement-level triggers so stats never scan.
-- Each statement applies its deltas in (topic, status) order: no deadlock between writers.
CREATE TABLE redrive_counts (
    topic  text NOT NULL,
    status text NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (topic, status)
);

-- Records that became dead, per topic and minute.
CREATE TABLE redrive_dead_timeline (
    minute timestamptz NOT NULL,
    topic  text NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (minute, topic)
);

CREATE FUNCTION redrive_on_insert() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO redrive_counts AS c (topic, status, n)
    SELECT topic, status, count(*) FROM new_rows GROUP BY topic, status ORDER BY topic, status
    ON CONFLICT (topic, status) DO UPDATE SET n = c.n + excluded.n;
    INSERT INTO redrive_dead_timeline AS t (minute, topic, n)
    SELECT date_trunc('minute', dead_at), topic, count(*) FROM new_rows
    WHERE status = 'dead' GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (minute, topic) DO UPDATE SET n = t.n + excluded.n;
    IF EXISTS (SELECT 1 FROM new_rows WHERE status = 'scheduled') THEN
        PERFORM pg_notify(left('redrive_' || TG_TABLE_SCHEMA, 63), '');
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION redrive_on_update() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO redrive_counts AS c (topic, status, n)
    SELECT topic, status, sum(n) FROM (
        SELECT topic, status, -count(*) AS n FROM old_rows GROUP BY topic, status
        UNION ALL
        SELECT topic, status, count(*) AS n FROM new_rows GROUP BY topic, status
    ) AS deltas GROUP BY topic, status HAVING sum(n) <> 0 ORDER BY topic, status
    ON CONFLICT (topic, status) DO UPDATE SET n = c.n + excluded.n;
    INSERT INTO redrive_dead_timeline AS t (minute, topic, n)
    SELECT date_trunc('minute', nr.dead_at), nr.topic, count(*)
    FROM new_rows AS nr JOIN old_rows AS o USING (id)
    WHERE nr.status = 'dead' AND o.status <> 'dead' GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (minute, topic) DO UPDATE SET n = t.n + excluded.n;
    IF EXISTS (
        SELECT 1 FROM new_rows AS nr JOIN old_rows AS o USING (id)
        WHERE nr.status = 'scheduled' AND o.status <> 'scheduled'
    ) THEN
        PERFORM pg_notify(left('redrive_' || TG_TABLE_SCHEMA, 63), '');
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION redrive_on_delete() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO redrive_counts AS c (topic, status, n)
    SELECT topic, status, -count(*) FROM old_rows GROUP BY topic, status ORDER BY topic, status
    ON CONFLICT (topic, status) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE TRIGGER redrive_counts_insert AFTER INSERT ON redrive_dead_letters
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION redrive_on_insert();
CREATE TRIGGER redrive_counts_update AFTER UPDATE ON redrive_dead_letters
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION redrive_on_update();
CREATE TRIGGER redrive_counts_delete AFTER DELETE ON redrive_dead_letters
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION redrive_on_delete();

CREATE TABLE redrive_audit (
    id     text COLLATE "C" PRIMARY KEY,
    at     timestamptz NOT NULL,
    actor  text NOT NULL,
    action text NOT NULL,
    count  integer NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE redrive_meta (
    namespace text NOT NULL,
    key       text NOT NULL,
    value     jsonb NOT NULL,
    version   integer NOT NULL,
    PRIMARY KEY (namespace, key)
);
