//! The notification store conformance suite (DESIGN §3): every case runs against PostgreSQL
//! (its own schema) and SQLite (its own tempdir), through the same store and the same feature
//! functions the RPCs call. A feature is done only when it passes on both.

#[path = "store_conformance/badge.rs"]
mod badge;
mod common;
#[path = "store_conformance/inbox.rs"]
mod inbox;
#[path = "store_conformance/jobs.rs"]
mod jobs;
#[path = "store_conformance/members.rs"]
mod members;
#[path = "store_conformance/settings.rs"]
mod settings;
#[path = "store_conformance/tokens.rs"]
mod tokens;

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
                tokens::registration_stores_the_token,
                tokens::registering_again_replaces_in_place,
                tokens::platforms_and_app_ids_are_separate_registrations,
                tokens::a_token_held_elsewhere_moves_and_its_jobs_are_cancelled,
                tokens::a_moved_token_lands_in_the_callers_registration,
                tokens::the_cap_counts_registrations_not_moves,
                tokens::racing_registrations_of_one_token_leave_one_holder,
                tokens::racing_registrations_respect_the_cap,
                tokens::unregister_removes_only_the_callers_own,
                tokens::list_is_newest_first_in_pages,
                tokens::rpc_refuses_unconfigured_platforms,
                tokens::rpc_rate_limits_registrations_per_device,
                tokens::rpc_lists_suffixes_never_tokens,
                inbox::entries_are_written_once_per_message,
                inbox::a_batch_of_entries_reports_only_the_new_ones,
                inbox::list_pages_newest_first,
                inbox::unread_only_is_part_of_the_page_token,
                inbox::mark_up_to_marks_that_entry_and_older,
                inbox::mark_all_marks_everything,
                inbox::foreign_and_unknown_entries_are_not_found,
                inbox::trim_drops_old_entries_and_each_users_oldest_past_the_cap,
                badge::no_counts_is_all_zero,
                badge::badge_sums_unread_over_unmuted_conversations,
                badge::counts_and_mute_are_set_independently,
                settings::defaults_without_a_row,
                settings::updates_change_only_the_masked_fields,
                settings::settings_are_per_user,
                jobs::a_job_is_written_once_per_message_token_and_kind,
                jobs::message_jobs_in_a_batch_are_written_once,
                jobs::urgent_jobs_are_claimed_before_bulk_ones,
                members::a_join_and_a_leave_heard_twice_are_recorded_once,
                jobs::claims_take_due_jobs_once_under_a_lease,
                jobs::a_batch_settles_each_job_as_decided,
                jobs::storm_counts_see_recent_alerts_up_to_the_cap,
                jobs::only_the_holding_claim_settles_a_job,
                jobs::badge_pushes_are_spaced_per_user,
                jobs::a_released_claim_is_due_again_without_waiting_for_its_lease,
                jobs::concurrent_claims_never_share_a_job,
            );
        }
    };
}

backend!(postgres, Backend::Postgres);
backend!(sqlite, Backend::Sqlite);
