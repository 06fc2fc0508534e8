//! Membership: conversation updates, adding, removing, leaving, roles, listing members, invites.

use crate::conversations::Conversations;

impl Conversations {}
