-- redrive schema 2: error groups kept by triggers, so `redrive groups` reads a few rows
-- instead of grouping the whole table. Backfilled from the records already there.
CREATE TABLE redrive_groups (
    fingerprint    TEXT NOT NULL,
    status         TEXT NOT NULL,
    topic          TEXT NOT NULL,
    handler        TEXT NOT NULL,
    error_type     TEXT NOT NULL,
    n              INTEGER NOT NULL,
    first_seen     TEXT NOT NULL,
    last_seen      TEXT NOT NULL,
    sample_id      TEXT NOT NULL,
    sample_message TEXT NOT NULL,
    PRIMARY KEY (fingerprint, status)
) WITHOUT ROWID;

INSERT INTO redrive_groups
SELECT fingerprint, status, topic, handler, error_type, COUNT(*), MIN(created_at),
       MAX(updated_at), MAX(id), error_message
FROM redrive_dead_letters GROUP BY fingerprint, status;

CREATE TRIGGER redrive_groups_insert AFTER INSERT ON redrive_dead_letters BEGIN
    INSERT INTO redrive_groups VALUES (NEW.fingerprint, NEW.status, NEW.topic, NEW.handler,
        NEW.error_type, 1, NEW.created_at, NEW.updated_at, NEW.id, NEW.error_message)
    ON CONFLICT (fingerprint, status) DO UPDATE SET n = n + 1,
        first_seen = MIN(first_seen, excluded.first_seen),
        last_seen = MAX(last_seen, excluded.last_seen),
        sample_id = excluded.sample_id, sample_message = excluded.sample_message;
END;
CREATE TRIGGER redrive_groups_delete AFTER DELETE ON redrive_dead_letters BEGIN
    UPDATE redrive_groups SET n = n - 1
    WHERE fingerprint = OLD.fingerprint AND status = OLD.status;
END;
CREATE TRIGGER redrive_groups_update AFTER UPDATE OF status, fingerprint ON redrive_dead_letters
WHEN OLD.status IS NOT NEW.status OR OLD.fingerprint IS NOT NEW.fingerprint BEGIN
    UPDATE redrive_groups SET n = n - 1
    WHERE fingerprint = OLD.fingerprint AND status = OLD.status;
    INSERT INTO redrive_groups VALUES (NEW.fingerprint, NEW.status, NEW.topic, NEW.handler,
        NEW.error_type, 1, NEW.created_at, NEW.updated_at, NEW.id, NEW.error_message)
    ON CONFLICT (fingerprint, status) DO UPDATE SET n = n + 1,
        first_seen = MIN(first_seen, excluded.first_seen),
        last_seen = MAX(last_seen, excluded.last_seen),
        sample_id = excluded.sample_id, sample_message = excluded.sample_message;
END;
