//! The `UserStore` conformance suite (DESIGN §3): every case runs against PostgreSQL (its own
//! schema) and SQLite (its own tempdir). A feature is done only when it passes on both.

#[path = "store_conformance/blocks.rs"]
mod blocks;
mod common;
#[path = "store_conformance/concurrency.rs"]
mod concurrency;
#[path = "store_conformance/contacts.rs"]
mod contacts;
#[path = "store_conformance/profiles.rs"]
mod profiles;
#[path = "store_conformance/registration.rs"]
mod registration;
#[path = "store_conformance/requests.rs"]
mod requests;
#[path = "store_conformance/search.rs"]
mod search;

use common::{Backend, Env};

macro_rules! cases {
    ($backend:expr; $($group:ident::$case:ident),* $(,)?) => { $(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            let Some(env) = Env::new($backend).await else { return };
            super::$group::$case(&env).await;
            env.cleanup().await;
        }
    )* };
}

macro_rules! backend {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;
            cases!($backend;
                registration::registration_creates_profile,
                registration::registration_is_idempotent,
                registration::registration_completes_profile_created_first,
                registration::registration_never_revives_tombstone,
                registration::erase_user_removes_everything,
                registration::erase_user_without_profile,
                registration::erase_user_publishes_contact_removed,
                profiles::update_profile_applies_given_fields_with_event,
                profiles::usernames_are_unique_case_insensitively,
                profiles::tombstones_refuse_changes,
                profiles::update_privacy_applies_given_settings,
                profiles::update_privacy_publishes_every_setting,
                profiles::unchanged_privacy_publishes_nothing,
                profiles::profile_reads,
                search::search_matches_words_names_and_usernames,
                search::search_ranks_and_filters,
                search::search_pages_without_gaps_or_repeats,
                contacts::add_update_remove_contact,
                contacts::contact_limit,
                contacts::contact_entries_publish_added_and_removed,
                contacts::list_contacts_in_order_with_pages,
                contacts::relations_report_every_flag,
                requests::send_request_and_resend,
                requests::crossing_request_accepts,
                requests::send_request_refusals,
                requests::accept_request,
                requests::decline_and_cancel,
                requests::list_requests_newest_first,
                requests::accepted_requests_publish_contact_added,
                blocks::block_cancels_open_requests,
                blocks::unblock_appends_event_only_when_blocked,
                blocks::list_blocked_newest_first,
                blocks::block_keeps_contacts_and_publishes_no_removal,
                concurrency::concurrent_username_claims,
                concurrency::crossing_requests_race,
                concurrency::concurrent_adds_respect_contact_limit,
            );
        }
    };
}

backend!(postgres, Backend::Postgres);
backend!(sqlite, Backend::Sqlite);
