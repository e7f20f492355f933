-- redrive schema 1: dead letters, counts kept by triggers, dead-letter timeline, audit, meta.
CREATE TABLE redrive_dead_letters (
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL,
    topic            TEXT NOT NULL,
    handler          TEXT NOT NULL,
    status           TEXT NOT NULL,
    payload          TEXT NOT NULL,
    key              TEXT,
    headers          TEXT NOT NULL DEFAULT '{}',
    correlation_id   TEXT,
    source           TEXT,
    tenant_id        TEXT,
    occurred_at      TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    error_type       TEXT NOT NULL,
    error_message    TEXT NOT NULL,
    traceback        TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    history          TEXT NOT NULL DEFAULT '[]',
    origin           TEXT NOT NULL DEFAULT '{}',
    consumer         TEXT NOT NULL DEFAULT '{}',
    version          TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    next_attempt_at  TEXT,
    dead_at          TEXT,
    resolved_at      TEXT,
    replays          INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at TEXT
);
-- Listing is newest first by id (UUIDv7: time order), filtered by one of these.
CREATE INDEX redrive_dl_status ON redrive_dead_letters (status, id);
CREATE INDEX redrive_dl_topic ON redrive_dead_letters (topic, status, id);
CREATE INDEX redrive_dl_fingerprint ON redrive_dead_letters (fingerprint, status, id);
CREATE INDEX redrive_dl_handler ON redrive_dead_letters (handler, id);
CREATE INDEX redrive_dl_error_type ON redrive_dead_letters (error_type, id);
CREATE INDEX redrive_dl_tenant ON redrive_dead_letters (tenant_id, id) WHERE tenant_id IS NOT NULL;
CREATE INDEX redrive_dl_correlation ON redrive_dead_letters (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX redrive_dl_version ON redrive_dead_letters (version, id) WHERE version IS NOT NULL;
-- The scheduler's claims, and the oldest dead letter per topic.
CREATE INDEX redrive_dl_due ON redrive_dead_letters (status, next_attempt_at);
CREATE INDEX redrive_dl_lease ON redrive_dead_letters (status, lease_expires_at);
CREATE INDEX redrive_dl_dead_at ON redrive_dead_letters (status, topic, dead_at);
CREATE INDEX redrive_dl_updated ON redrive_dead_letters (status, updated_at);

-- Counts by topic and status, kept exact by triggers so stats never scan the table.
CREATE TABLE redrive_counts (
    topic  TEXT NOT NULL,
    status TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (topic, status)
) WITHOUT ROWID;

CREATE TRIGGER redrive_counts_insert AFTER INSERT ON redrive_dead_letters BEGIN
    INSERT INTO redrive_counts (topic, status, n) VALUES (NEW.topic, NEW.status, 1)
    ON CONFLICT (topic, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER redrive_counts_delete AFTER DELETE ON redrive_dead_letters BEGIN
    UPDATE redrive_counts SET n = n - 1 WHERE topic = OLD.topic AND status = OLD.status;
END;
CREATE TRIGGER redrive_counts_update AFTER UPDATE OF status, topic ON redrive_dead_letters
WHEN OLD.status IS NOT NEW.status OR OLD.topic IS NOT NEW.topic BEGIN
    UPDATE redrive_counts SET n = n - 1 WHERE topic = OLD.topic AND status = OLD.status;
    INSERT INTO redrive_counts (topic, status, n) VALUES (NEW.topic, NEW.status, 1)
    ON CONFLICT (topic, status) DO UPDATE SET n = n + 1;
END;

-- Records that became dead, per topic and minute: rates, charts and "new in the last hour".
CREATE TABLE redrive_dead_timeline (
    topic  TEXT NOT NULL,
    minute TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (minute, topic)
) WITHOUT ROWID;

CREATE TRIGGER redrive_timeline_insert AFTER INSERT ON redrive_dead_letters
WHEN NEW.status = 'dead' BEGIN
    INSERT INTO redrive_dead_timeline (topic, minute, n)
    VALUES (NEW.topic, substr(NEW.dead_at, 1, 16), 1)
    ON CONFLICT (minute, topic) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER redrive_timeline_update AFTER UPDATE OF status ON redrive_dead_letters
WHEN NEW.status = 'dead' AND OLD.status IS NOT 'dead' BEGIN
    INSERT INTO redrive_dead_timeline (topic, minute, n)
    VALUES (NEW.topic, substr(NEW.dead_at, 1, 16), 1)
    ON CONFLICT (minute, topic) DO UPDATE SET n = n + 1;
END;

CREATE TABLE redrive_audit (
    id     TEXT PRIMARY KEY,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    count  INTEGER NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE redrive_meta (
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    version   INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
