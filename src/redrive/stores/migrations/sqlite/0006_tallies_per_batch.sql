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
