-- Channel fan-out has its own queue (spec §B5): a channel post's event writes one row here
-- instead of every member's entry and jobs, and the fan-out worker notifies the members in
-- chunks (keyset by user id), one transaction per chunk, so a 100,000-member post never
-- holds back the events behind it.
CREATE TABLE notify_fanouts (
    message_id      uuid PRIMARY KEY,
    conversation_id uuid NOT NULL,
    seq             bigint NOT NULL,
    sender_user_id  uuid NOT NULL,
    -- the message's time (its entries' created_at)
    created_at_ms   bigint NOT NULL,
    -- the last member done (none yet: NULL)
    after_user_id   uuid
);

-- 0 urgent, 1 a channel fan-out's: claimed only when nothing urgent is due, so direct
-- messages' pushes never wait behind a large channel's
ALTER TABLE push_jobs ADD COLUMN priority smallint NOT NULL DEFAULT 0;
DROP INDEX push_jobs_due;
CREATE INDEX push_jobs_due ON push_jobs (state, priority, due_at_ms);
