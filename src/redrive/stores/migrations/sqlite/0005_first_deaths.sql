-- redrive schema 5: the timeline counts first deaths and re-deaths apart.
-- A replay that dies again is not a new dead letter: `n` counts records that died for the
-- first time (replays = 0), `redead` those that died again after a replay. Rates, charts
-- and the `rate` alert rule read `n`; operators see both.
ALTER TABLE redrive_dead_timeline ADD COLUMN redead INTEGER NOT NULL DEFAULT 0;

DROP TRIGGER redrive_timeline_insert;
DROP TRIGGER redrive_timeline_update;

CREATE TRIGGER redrive_timeline_insert AFTER INSERT ON redrive_dead_letters
WHEN NEW.status = 'dead' BEGIN
    INSERT INTO redrive_dead_timeline (topic, minute, n, redead)
    VALUES (NEW.topic, substr(NEW.dead_at, 1, 16), NEW.replays = 0, NEW.replays > 0)
    ON CONFLICT (minute, topic) DO UPDATE SET n = n + excluded.n, redead = redead + excluded.redead;
END;
CREATE TRIGGER redrive_timeline_update AFTER UPDATE OF status ON redrive_dead_letters
WHEN NEW.status = 'dead' AND OLD.status IS NOT 'dead' BEGIN
    INSERT INTO redrive_dead_timeline (topic, minute, n, redead)
    VALUES (NEW.topic, substr(NEW.dead_at, 1, 16), NEW.replays = 0, NEW.replays > 0)
    ON CONFLICT (minute, topic) DO UPDATE SET n = n + excluded.n, redead = redead + excluded.redead;
END;
