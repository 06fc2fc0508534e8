-- The outbox as a replayable event log (live delivery resumes from it, DESIGN §7).
--
-- One row: the log's epoch and its pruning horizon.
-- * epoch: a random id (32 hex digits) fixed when the log was created. Cursors carry it; a
--   cursor of another epoch cannot be resumed. Restoring this file from a backup MUST rotate
--   it, because ids after the backup point are handed out again:
--       UPDATE outbox_log SET epoch = lower(hex(randomblob(16)));
-- * horizon: the highest id pruning ever deleted (horizon_tx stays 0 on SQLite). Rows at or
--   below it may be gone, so a cursor below it cannot be resumed without loss. It only rises.
CREATE TABLE outbox_log (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    epoch      TEXT    NOT NULL,
    horizon_tx INTEGER NOT NULL DEFAULT 0,
    horizon_id INTEGER NOT NULL DEFAULT 0
);
INSERT INTO outbox_log (singleton, epoch) VALUES (1, lower(hex(randomblob(16))));

-- A stream replays one user's subjects after its cursor: one index range per subject.
CREATE INDEX outbox_subject_order ON outbox (subject, id);
