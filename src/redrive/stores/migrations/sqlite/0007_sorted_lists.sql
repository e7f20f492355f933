-- redrive schema 7: the dead-letters list sorts by when a record died and by its attempts.
-- Each sort is a keyset range over (status, key, id), so a page costs the same at any depth.
-- The (status, topic, dead_at) index no query uses any more (the oldest age comes from id
-- order since schema 5) makes way for the dead_at one: one index more than before in all.
DROP INDEX IF EXISTS redrive_dl_dead_at;
CREATE INDEX IF NOT EXISTS redrive_dl_dead_sort ON redrive_dead_letters (status, dead_at, id);
CREATE INDEX IF NOT EXISTS redrive_dl_attempts_sort ON redrive_dead_letters (status, attempts, id);
-- A store that was analyzed before would plan with statistics for the old indexes and
-- none for the new ones (SQLite then takes an unanalyzed index for very selective and may
-- sort a million rows): analyze the table again so every index has its statistics. A few
-- seconds at a million records, once.
ANALYZE redrive_dead_letters;
