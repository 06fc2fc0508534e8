//! Reactions and pins.

use crate::conversations::Conversations;

impl Conversations {}
