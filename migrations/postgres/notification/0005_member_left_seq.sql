-- Membership comes from two streams: the conversation's own events (MemberJoined, MemberLeft,
-- MemberRemoved, in order with its messages) and the members' user events (ConversationJoined,
-- ConversationLeft). Whichever is applied first records it; the other finds it done. A member
-- who left keeps the row with the seq they left at, so a late join from the other stream
-- cannot bring them back, and a message is for the members at its seq:
-- joined_seq < seq and (left_seq IS NULL or left_seq > seq).
ALTER TABLE notify_members ADD COLUMN left_seq bigint;
