-- The outbox as a replayable event log (live delivery resumes from it, DESIGN §7).
--
-- One row: the log's epoch and its pruning horizon.
-- * epoch: a random id fixed when the log was created. Cursors carry it; a cursor of another
--   epoch cannot be resumed. Restoring this database from a dump (or a snapshot) MUST rotate
--   it, because transaction ids restart and old cursors would point at the wrong rows:
--       UPDATE outbox_log SET epoch = gen_random_uuid();
-- * horizon: the highest (tx_id, id) pruning ever deleted. Rows at or below it may be gone,
--   so a cursor below it cannot be resumed without loss. It only ever rises.
CREATE TABLE outbox_log (
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    epoch      UUID    NOT NULL DEFAULT gen_random_uuid(),
    horizon_tx BIGINT  NOT NULL DEFAULT 0,
    horizon_id BIGINT  NOT NULL DEFAULT 0
);
INSERT INTO outbox_log DEFAULT VALUES;

-- A stream replays one user's subjects after its cursor: one index range per subject.
CREATE INDEX outbox_subject_order ON outbox (subject, tx_id, id);
