//! The events of members: builders for their `ConversationEvent` / `UserEvent` kinds.
