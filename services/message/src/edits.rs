//! Editing messages (with their history) and deleting them for one user or for everyone.

use crate::conversations::Conversations;

impl Conversations {}
