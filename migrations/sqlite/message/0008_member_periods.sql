-- Membership periods for live delivery (see the PostgreSQL migration of the same name).
CREATE TABLE member_periods (
    conversation_id TEXT    NOT NULL REFERENCES conversations ON DELETE CASCADE,
    user_id         TEXT    NOT NULL,
    from_seq        INTEGER NOT NULL,
    until_seq       INTEGER,
    closed_at       INTEGER, -- unix microseconds
    PRIMARY KEY (conversation_id, user_id, from_seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX member_periods_by_user ON member_periods (user_id, conversation_id, from_seq);

INSERT INTO member_periods (conversation_id, user_id, from_seq, until_seq, closed_at)
SELECT m.conversation_id, m.user_id,
       CASE WHEN m.joined_at = c.created_at THEN 1 ELSE m.joined_at_seq END,
       m.left_at_seq,
       CASE WHEN m.left_at_seq IS NULL THEN NULL ELSE unixepoch() * 1000000 END
FROM members m JOIN conversations c USING (conversation_id);
