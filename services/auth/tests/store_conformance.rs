//! The `AuthStore` conformance suite (DESIGN §3, §5): every case runs against PostgreSQL (its own
//! schema) and SQLite (its own tempdir). A feature is done only when it passes on both.

#[path = "store_conformance/accounts.rs"]
mod accounts;
mod common;
#[path = "store_conformance/sessions.rs"]
mod sessions;

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
                accounts::pending_registration_put_replace_get,
                accounts::otp_lifecycle,
                accounts::create_account_is_atomic,
                sessions::sessions_page_and_count,
                sessions::rotate_refresh_cases,
                sessions::concurrent_rotations_rotate_once,
                sessions::revoke_sessions_only_except_all,
                sessions::revoked_since_lists_recent_revocations,
                sessions::revoked_since_lists_sessions_of_deleted_accounts,
                accounts::set_password,
                accounts::delete_account_removes_everything,
            );
        }
    };
}

backend!(postgres, Backend::Postgres);
backend!(sqlite, Backend::Sqlite);
