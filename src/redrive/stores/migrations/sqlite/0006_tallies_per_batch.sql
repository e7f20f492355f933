-- redrive schema 6: counts, error groups and the dead-letter timeline are kept by the store's
-- writing methods, one statement per table for a whole batch, in the transaction of the rows
-- (redrive/stores/sqlite/tallies.py), instead of three trigger statements per row written.
-- The tables keep their contents: the triggers kept them exact up to this migration.
DROP TRIGGER redrive_counts_insert;
DROP TRIGGER redrive_counts_delete;
DROP TRIGGER redrive_counts_update;
DROP TRIGGER redrive_timeline_insert;
DROP TRIGGER redrive_timeline_update;
DROP TRIGGER redrive_groups_insert;
DROP TRIGGER redrive_groups_delete;
DROP TRIGGER redrive_groups_update;

-- The scheduler's two indexes hold only the records they serve (as in PostgreSQL): a dead
-- or resolved record no longer writes an entry into either, 7 of the 94 WAL pages of a
-- 100-row group commit. The status stays the first column so the claim's OR of
-- (status, time) ranges still searches both.
DROP INDEX redrive_dl_due;
DROP INDEX redrive_dl_lease;
CREATE INDEX redrive_dl_due ON redrive_dead_letters (status, next_attempt_at)
    WHERE status = 'scheduled';
CREATE INDEX redrive_dl_lease ON redrive_dead_letters (status, lease_expires_at)
    WHERE status = 'retrying';
