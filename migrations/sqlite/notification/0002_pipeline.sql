-- The delivery pipeline's state (spec §B2-§B5), beside 0001's projections.

-- each member's read watermark: a message deleted for everyone was unread for exactly the
-- members whose watermark is below its seq (their unread count goes down by one)
ALTER TABLE notify_counts ADD COLUMN last_read_seq INTEGER NOT NULL DEFAULT 0;

-- the messages of the bus's retention window (7 days by default), for what MessageDeleted
-- does not carry: its seq and sender; pruned with the jobs
CREATE TABLE notify_messages (
    message_id      BLOB PRIMARY KEY,
    conversation_id BLOB NOT NULL,
    seq             INTEGER NOT NULL,
    sender_user_id  BLOB NOT NULL,
    created_at_ms   INTEGER NOT NULL
);
CREATE INDEX notify_messages_created ON notify_messages (created_at_ms);

-- who each message of the window mentions (counted), so deleting it lowers their counts
CREATE TABLE notify_mentions (
    message_id BLOB NOT NULL,
    user_id    BLOB NOT NULL,
    PRIMARY KEY (message_id, user_id)
);

-- the conversation and seq a job is about (dismiss pushes have no message), the stage of an
-- alert (0 new: check presence; 1 recheck: push only if still unread; 2 send), the claim's
-- lease, when it was sent (storm damping looks back 10 s) and the last provider error
ALTER TABLE push_jobs ADD COLUMN conversation_id BLOB;
ALTER TABLE push_jobs ADD COLUMN seq INTEGER;
ALTER TABLE push_jobs ADD COLUMN phase INTEGER NOT NULL DEFAULT 0;
ALTER TABLE push_jobs ADD COLUMN lease_until_ms INTEGER;
ALTER TABLE push_jobs ADD COLUMN sent_at_ms INTEGER;
ALTER TABLE push_jobs ADD COLUMN last_error TEXT;
CREATE INDEX push_jobs_user_sent ON push_jobs (user_id, sent_at_ms);
CREATE INDEX push_jobs_message ON push_jobs (message_id);
