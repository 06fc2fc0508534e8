//! The `MessageStore` conformance suite (DESIGN §3): every case runs against PostgreSQL (its
//! own schema) and SQLite (its own tempdir). A feature is done only when it passes on both.
//!
//! After every case the outbox is checked against the sequences: each conversation's events
//! are exactly seqs 1..=last_seq in append order, each user's exactly 1..=their last user seq,
//! and nothing else is there (one outbox row per sequenced change).

/// Runs an area module's cases on both backends: an area module (one file per part of the
/// store, e.g. `store_conformance/members.rs`) ends with `conformance!(case_a, case_b);`, each
/// case an `async fn case_a(env: &Env)`. The tests are `<area>::postgres::case_a` and
/// `<area>::sqlite::case_a`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            conformance!(@cases crate::common::Backend::Postgres; $($case),*);
        }
        mod sqlite {
            conformance!(@cases crate::common::Backend::Sqlite; $($case),*);
        }
    };
    (@cases $backend:expr; $($case:ident),*) => { $(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            let Some(env) = crate::common::Env::new($backend).await else { return };
            super::$case(&env).await;
            env.assert_one_event_per_seq().await;
            env.cleanup().await;
        }
    )* };
}

#[path = "store_conformance/batch.rs"]
mod batch;
mod common;
#[path = "store_conformance/concurrency.rs"]
mod concurrency;
#[path = "store_conformance/creation.rs"]
mod creation;
#[path = "store_conformance/edits.rs"]
mod edits;
#[path = "store_conformance/lifecycle.rs"]
mod lifecycle;
#[path = "store_conformance/live.rs"]
mod live;
#[path = "store_conformance/members.rs"]
mod members;
#[path = "store_conformance/moderation.rs"]
mod moderation;
#[path = "store_conformance/previews.rs"]
mod previews;
#[path = "store_conformance/reactions.rs"]
mod reactions;
#[path = "store_conformance/reads.rs"]
mod reads;
#[path = "store_conformance/receipts.rs"]
mod receipts;
#[path = "store_conformance/search.rs"]
mod search;
#[path = "store_conformance/send.rs"]
mod send;
#[path = "store_conformance/threads.rs"]
mod threads;

use common::{Backend, Env};

macro_rules! cases {
    ($backend:expr; $($group:ident::$case:ident),* $(,)?) => { $(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            let Some(env) = Env::new($backend).await else { return };
            super::$group::$case(&env).await;
            env.assert_one_event_per_seq().await;
            env.cleanup().await;
        }
    )* };
}

macro_rules! backend {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;
            cases!($backend;
                creation::create_direct_creates_once,
                creation::create_direct_refusals,
                creation::record_user_never_revives_deleted,
                creation::create_conversation_with_roles_and_events,
                creation::create_conversation_is_idempotent,
                creation::create_conversation_refusals,
                send::send_takes_next_seq_and_counts,
                send::content_round_trips,
                send::send_is_idempotent,
                send::send_refusals,
                threads::replies_and_threads,
                reads::list_conversations_order_filters_pages,
                reads::message_windows,
                concurrency::concurrent_sends_take_contiguous_seqs,
                concurrency::concurrent_retries_store_one_message,
                concurrency::concurrent_direct_creation,
                concurrency::concurrent_creation_retries,
            );
        }
    };
}

backend!(postgres, Backend::Postgres);
backend!(sqlite, Backend::Sqlite);
