//! The id of the request being handled, readable anywhere in its handler (INTERNAL errors
//! name it). `echo_runtime`'s request id layer sets it from `x-request-id` or mints one.

use std::future::Future;

use tokio::task::futures::TaskLocalFuture;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `future` as the handling of request `id` ([`current`] answers `id` inside it).
pub fn scope<F: Future>(id: String, future: F) -> TaskLocalFuture<String, F> {
    REQUEST_ID.scope(id, future)
}
