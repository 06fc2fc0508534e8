-- Who each message mentions (members at send time, or newly mentioned by an edit), so unread
-- mention counts can be recomputed from a watermark and corrected when a message is deleted,
-- without decoding content (which delete-for-everyone erases). Rows go with the message's
-- content on delete-for-everyone.
CREATE TABLE mentions (
    message_id      UUID   NOT NULL REFERENCES messages ON DELETE CASCADE,
    user_id         UUID   NOT NULL,
    conversation_id UUID   NOT NULL,
    seq             BIGINT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX mentions_by_user ON mentions (user_id, conversation_id, seq);
