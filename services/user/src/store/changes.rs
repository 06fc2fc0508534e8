//! What a committed change publishes, decided once for both backends: each backend reports
//! what its statements actually changed (the privacy settings before and after, the `contacts`
//! rows inserted or deleted) and appends the events these functions return, in the same
//! transaction. The store builds these events itself, unlike the block and profile events that
//! `people` hands in, because only its statements know whether a row existed: a repeat, or an
//! entry that was already there, publishes nothing.

use echo_bus::{Event, Outbox};
use echo_ids::UserId;
use echo_store::Tx;

use super::{Privacy, Profile};
use crate::error::UserError;

/// One row of `contacts`: `(owner, contact)`, the owner has the contact in their list.
pub(crate) type ContactRow = (UserId, UserId);

/// `PrivacyChanged` (all the settings after) when any setting differs from `before`; nothing
/// when the change set what was already there.
pub(crate) fn privacy_events(before: Privacy, after: &Profile) -> Vec<Event> {
    if before == after.privacy {
        return Vec::new();
    }
    vec![crate::events::privacy_changed(after)]
}

/// One `ContactAdded` per row the transaction inserted.
pub(crate) fn contacts_added(rows: Vec<ContactRow>) -> Vec<Event> {
    in_order(rows)
        .map(|(owner, contact)| crate::events::contact_added(owner, contact))
        .collect()
}

/// One `ContactRemoved` per row the transaction deleted.
pub(crate) fn contacts_removed(rows: Vec<ContactRow>) -> Vec<Event> {
    in_order(rows)
        .map(|(owner, contact)| crate::events::contact_removed(owner, contact))
        .collect()
}

/// Rows in (owner, contact) order, so both backends append the same sequence whatever order
/// their `RETURNING` gave.
fn in_order(mut rows: Vec<ContactRow>) -> impl Iterator<Item = ContactRow> {
    rows.sort_unstable();
    rows.dedup();
    rows.into_iter()
}

/// Appends `events` inside `tx` (nothing when there are none).
pub(crate) async fn append(tx: &mut Tx, events: &[Event]) -> Result<(), UserError> {
    if !events.is_empty() {
        Outbox::append_all(tx, events).await?;
    }
    Ok(())
}

/// Appends `events` inside `tx` and commits it through `outbox`, which wakes the relay; with
/// no events, a plain commit (nothing to wake it for).
pub(crate) async fn commit(outbox: &Outbox, mut tx: Tx, events: &[Event]) -> Result<(), UserError> {
    if events.is_empty() {
        tx.commit().await?;
        return Ok(());
    }
    append(&mut tx, events).await?;
    outbox.commit(tx).await?;
    Ok(())
}
