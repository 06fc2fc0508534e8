-- Membership periods for live delivery (DESIGN §7): one row per stretch of membership, in
-- conversation seqs, so a stream or a replay can tell whether a user was a member at the exact
-- seq of an event, also long after they left or joined again (the member row keeps only the
-- latest stretch). Written in the transaction of every join and leave.
CREATE TABLE member_periods (
    conversation_id UUID        NOT NULL REFERENCES conversations ON DELETE CASCADE,
    user_id         UUID        NOT NULL,
    -- The first seq the member sees: 1 for the members a conversation was created with (so
    -- ConversationCreated reaches them), else the seq of their MemberJoined.
    from_seq        BIGINT      NOT NULL,
    -- The last seq they see: their MemberLeft/MemberRemoved seq; NULL while a member.
    until_seq       BIGINT,
    -- When the period closed (the closing event's time); NULL while open.
    closed_at       TIMESTAMPTZ,
    PRIMARY KEY (conversation_id, user_id, from_seq)
);
-- A user's periods (open, or closed recently) when their stream starts or resumes.
CREATE INDEX member_periods_by_user ON member_periods (user_id, conversation_id, from_seq);

-- Backfill: the latest stretch of every member row, current or former (earlier stretches of
-- members who left and came back were not kept). Members who joined in the creating
-- transaction (joined when the conversation was created) start at 1. Former members' closing
-- time is unknown: it is set to now, so "closed since" reads include them rather than miss them.
INSERT INTO member_periods (conversation_id, user_id, from_seq, until_seq, closed_at)
SELECT m.conversation_id, m.user_id,
       CASE WHEN m.joined_at = c.created_at THEN 1 ELSE m.joined_at_seq END,
       m.left_at_seq,
       CASE WHEN m.left_at_seq IS NULL THEN NULL ELSE now() END
FROM members m JOIN conversations c USING (conversation_id);
