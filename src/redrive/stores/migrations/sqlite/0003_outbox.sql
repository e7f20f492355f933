-- redrive schema 3: the transactional outbox (redrive.outbox) in the store's file.
-- IF NOT EXISTS: files that got these tables from an older release keep them.
CREATE TABLE IF NOT EXISTS redrive_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, topic TEXT NOT NULL,
    payload TEXT NOT NULL, key TEXT, headers TEXT NOT NULL DEFAULT '{}', aggregate_type TEXT,
    aggregate_id TEXT, correlation_id TEXT, tenant_id TEXT,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER, next_attempt_at TEXT NOT NULL,
    last_error TEXT, last_error_at TEXT, created_at TEXT NOT NULL, processed_at TEXT,
    dead_at TEXT, locked_by TEXT, locked_until TEXT
);
CREATE INDEX IF NOT EXISTS redrive_outbox_pending ON redrive_outbox (id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS redrive_outbox_pending_key ON redrive_outbox (key, id)
    WHERE status = 'pending' AND key IS NOT NULL;
CREATE INDEX IF NOT EXISTS redrive_outbox_dead ON redrive_outbox (dead_at, id)
    WHERE status = 'dead';
CREATE INDEX IF NOT EXISTS redrive_outbox_done ON redrive_outbox (processed_at)
    WHERE status = 'done';
CREATE TABLE IF NOT EXISTS redrive_outbox_archive (
    id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL,
    key TEXT, headers TEXT NOT NULL, aggregate_type TEXT, aggregate_id TEXT,
    correlation_id TEXT, tenant_id TEXT, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    max_attempts INTEGER, next_attempt_at TEXT NOT NULL, last_error TEXT, last_error_at TEXT,
    created_at TEXT NOT NULL, processed_at TEXT, dead_at TEXT, locked_by TEXT,
    locked_until TEXT, archived_at TEXT NOT NULL
);
