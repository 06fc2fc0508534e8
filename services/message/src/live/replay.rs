//! Replay: the durable events one user missed, read from the database (never from the bus),
//! in commit-safe order, filtered by membership at each event's exact seq.

use std::collections::HashMap;

use chrono::Utc;
use echo_bus::Position;
use echo_ids::{ConversationId, UserId};

use super::LiveError;
use super::hub::Shared;
use super::items::{Durable, Route, View, decode_all, hydrate};
use crate::store::MembershipPeriod;

/// Rows read per page.
const PAGE: i64 = 256;

/// A planned replay of `(from, upto]` for one user.
pub(crate) struct Replay {
    user: UserId,
    periods: HashMap<ConversationId, Vec<MembershipPeriod>>,
    subjects: Vec<String>,
    next: Position,
    upto: Position,
    done: bool,
}

impl Replay {
    /// Plan the replay of `(from, upto]`. `upto` must be a head read BEFORE this call, so the
    /// membership periods read here hold every change at or below it.
    pub async fn plan(
        shared: &Shared,
        user: UserId,
        from: Position,
        upto: Position,
    ) -> Result<Replay, LiveError> {
        // Every period, closed ones too however old: the horizon, not the clock, says how far
        // back a cursor can reach (a prune that lags keeps older rows replayable).
        let closed_since = chrono::DateTime::<Utc>::UNIX_EPOCH;
        let mut periods: HashMap<ConversationId, Vec<MembershipPeriod>> = HashMap::new();
        for period in shared.store.periods_of_user(user, closed_since).await? {
            periods
                .entry(period.conversation_id)
                .or_default()
                .push(period);
        }
        let mut subjects = vec![format!("echo.message.user_event.{user}")];
        subjects.extend(
            periods
                .keys()
                .map(|conversation| format!("echo.message.conversation_event.{conversation}")),
        );
        Ok(Replay {
            user,
            periods,
            subjects,
            next: from,
            upto,
            done: from >= upto,
        })
    }

    /// How many rows the replay would read, counting at most `cap`.
    pub async fn rows(&self, shared: &Shared, cap: i64) -> Result<i64, LiveError> {
        if self.done {
            return Ok(0);
        }
        Ok(shared
            .outbox
            .count_subjects(&self.subjects, self.next, self.upto, cap)
            .await?)
    }

    /// The next page of events this user may see (possibly empty while rows remain), or
    /// `None` when the replay is over.
    pub async fn next_page(
        &mut self,
        shared: &Shared,
    ) -> Result<Option<Vec<(View, Durable)>>, LiveError> {
        if self.done {
            return Ok(None);
        }
        let rows = shared
            .outbox
            .read_subjects(&self.subjects, self.next, self.upto, PAGE)
            .await?;
        // A prune that committed since the cursor was checked may have taken rows of this
        // page: end the stream (RESUME) and the reconnect gets ResyncRequired, never a gap.
        if shared.outbox.horizon().await? > self.next {
            return Err(LiveError::Pruned);
        }
        if (rows.len() as i64) < PAGE {
            self.done = true;
            self.next = self.upto;
        } else if let Some((position, _)) = rows.last() {
            self.next = *position;
        }
        let mut batch: Vec<Durable> = decode_all(&rows, shared.epoch)
            .into_iter()
            .filter(|durable| self.view(durable).is_some())
            .collect();
        hydrate(shared.store.as_ref(), &mut batch).await?;
        Ok(Some(
            batch
                .into_iter()
                .filter_map(|durable| Some((self.view(&durable)?, durable)))
                .collect(),
        ))
    }

    /// How this user relates to `durable`; `None` when it is not theirs.
    fn view(&self, durable: &Durable) -> Option<View> {
        match durable.route {
            Route::User { id, .. } if id == self.user => Some(match durable.joined() {
                // Joined since, and gone again: the conversation as it was when they joined.
                Some((conversation, joined_at)) => View {
                    from_seq: 0,
                    closed: self
                        .stretch(conversation, joined_at)
                        .is_some_and(|p| p.until_seq.is_some()),
                },
                None => View::default(),
            }),
            Route::User { .. } => None,
            Route::Conversation { id, seq, .. } => self.stretch(id, seq).map(|period| View {
                from_seq: period.from_seq,
                closed: period.until_seq.is_some(),
            }),
        }
    }

    fn stretch(&self, conversation: ConversationId, seq: i64) -> Option<&MembershipPeriod> {
        self.periods
            .get(&conversation)?
            .iter()
            .find(|period| period.covers(seq))
    }
}
