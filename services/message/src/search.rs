//! Full-text search over what a member may read, and thread views.

use crate::conversations::Conversations;

impl Conversations {}
