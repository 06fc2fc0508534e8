//! echo.admin.v1.AdminService (docs/admin.md): the operators' API, served on the admin port of
//! the process that runs auth, never on the public port.
//!
//! Every call is authenticated with an operator credential ([`Operators`]), distinct from user
//! access tokens and from the service credential; then parsed and validated; then acted out
//! through [`AccountControl`] (the accounts' contract: in the process that runs auth, the
//! journeys themselves); and every authenticated call but ListAuditLog writes one row to the
//! append-only audit log, whatever its outcome.
//!
//! One idea, kept whole: the operators' door. The credential check, the field rules and the
//! audit write sit beside each RPC so no RPC can be added that skips the check or the audit
//! row; split apart, a new RPC could be wired to one and not the other.

mod messages;

use std::future::Future;
use std::sync::Arc;

use echo_ids::UserId;
use echo_proto::echo::admin::v1 as pb;
use echo_proto::echo::admin::v1::admin_service_server::{AdminService, AdminServiceServer};
use echo_proto::echo::message::v1 as msg;
use echo_runtime::{Check, Failure, PageSize};
use sha2::{Digest as _, Sha256};
use tonic::{Code, Request, Response, Status};
use uuid::Uuid;

use crate::accounts::{AccountKey, Accounts};
use crate::domain::phone::PhoneNumber;
use crate::store::{AccountStatus, AuditEntry, AuthStore};

pub use messages::{GrpcMessages, MessageControl, NoMessages};

/// Longest `reason` (and report resolution), in characters.
pub const MAX_REASON: usize = 500;
/// Default and largest page of audit entries.
const AUDIT_PAGE: PageSize = PageSize {
    default: 50,
    max: 200,
};
/// Longest target recorded for a malformed id, in characters.
const MAX_TARGET: usize = 100;
/// Default and largest page of reports.
const REPORT_PAGE: PageSize = PageSize {
    default: 50,
    max: 200,
};

/// One operator's credential: their name (for the audit log) and the SHA-256 of their token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// Written to the audit log.
    pub name: String,
    /// SHA-256 of the token the operator presents.
    pub sha256: [u8; 32],
}

/// The operators allowed in, checked in constant time.
#[derive(Clone, Debug, Default)]
pub struct Operators(Arc<[Operator]>);

impl Operators {
    /// These operators (none: every call is UNAUTHENTICATED).
    pub fn new(operators: Vec<Operator>) -> Self {
        Self(operators.into())
    }

    /// The operator whose token is `token`: its SHA-256 is compared with every listed hash,
    /// each comparison in constant time and none skipped, so timing tells nothing of which
    /// bytes or which entry matched.
    pub fn find(&self, token: &str) -> Option<&str> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for operator in self.0.iter() {
            let difference = operator
                .sha256
                .iter()
                .zip(hash.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if difference == 0 {
                found = Some(operator.name.as_str());
            }
        }
        found
    }

    /// The calling operator of `request`, or UNAUTHENTICATED (`TOKEN_MISSING` without a bearer
    /// token, `TOKEN_INVALID` for any other token: a user's, a service's, a wrong one).
    fn caller<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()
            })
            .map(|(_, token)| token.trim());
        let Some(token) = token else {
            return Err(unauthenticated(
                "TOKEN_MISSING",
                "this call needs `authorization: Bearer <operator token>` metadata",
            ));
        };
        match self.find(token) {
            Some(name) => Ok(name.to_owned()),
            None => {
                tracing::warn!(
                    method = "echo.admin.v1.AdminService",
                    "refused an admin call with an unknown token"
                );
                Err(unauthenticated(
                    "TOKEN_INVALID",
                    "not an operator token (user and service tokens are not accepted here)",
                ))
            }
        }
    }
}

fn unauthenticated(reason: &'static str, message: &str) -> Status {
    Failure::reason(Code::Unauthenticated, reason, message).into()
}

/// What operators may do to accounts: auth's contract for them. In the process that runs auth
/// (always the case for the admin port, docs/admin.md) the journeys implement it directly.
#[tonic::async_trait]
pub trait AccountControl: Send + Sync + 'static {
    /// The account named by `key`; NOT_FOUND `USER_NOT_FOUND` when none.
    async fn lookup(&self, key: &AccountKey) -> Result<AccountStatus, Status>;
    /// Suspend it and end its sessions; the account and how many sessions ended now.
    async fn suspend(&self, user: UserId, reason: &str) -> Result<(AccountStatus, usize), Status>;
    /// Lift its suspension.
    async fn unsuspend(&self, user: UserId) -> Result<AccountStatus, Status>;
    /// End every active session of it; how many ended.
    async fn revoke_sessions(&self, user: UserId) -> Result<usize, Status>;
    /// Delete it as its owner's DeleteAccount would; how many sessions ended.
    async fn delete(&self, user: UserId) -> Result<usize, Status>;
}

#[tonic::async_trait]
impl AccountControl for Accounts {
    async fn lookup(&self, key: &AccountKey) -> Result<AccountStatus, Status> {
        Ok(self.account_status(key).await?)
    }

    async fn suspend(&self, user: UserId, reason: &str) -> Result<(AccountStatus, usize), Status> {
        Ok(Accounts::suspend(self, user, reason).await?)
    }

    async fn unsuspend(&self, user: UserId) -> Result<AccountStatus, Status> {
        Ok(Accounts::unsuspend(self, user).await?)
    }

    async fn revoke_sessions(&self, user: UserId) -> Result<usize, Status> {
        Ok(self.revoke_all_sessions(user).await?)
    }

    async fn delete(&self, user: UserId) -> Result<usize, Status> {
        Ok(self.delete_by_operator(user).await?)
    }
}

/// The AdminService handlers.
#[derive(Clone)]
pub struct AdminApi {
    control: Arc<dyn AccountControl>,
    messages: Arc<dyn MessageControl>,
    audit: Arc<AuthStore>,
    operators: Operators,
}

impl AdminApi {
    /// The handlers, acting on accounts through `control` and on reports and messages through
    /// `messages` (the message service's internal contract), auditing into `audit` (auth's
    /// store).
    pub fn new(
        control: Arc<dyn AccountControl>,
        messages: Arc<dyn MessageControl>,
        audit: Arc<AuthStore>,
        operators: Operators,
    ) -> Self {
        Self {
            control,
            messages,
            audit,
            operators,
        }
    }

    /// The AdminService server, refusing request messages over `max_request_bytes`.
    pub fn service(self, max_request_bytes: usize) -> AdminServiceServer<AdminApi> {
        AdminServiceServer::new(self).max_decoding_message_size(max_request_bytes)
    }

    /// Run `work` (given the accounts' contract) and write its audit row (`details` from its
    /// success), answering its result; a failure to write the row is the answer (UNAVAILABLE:
    /// the operator retries; every action is idempotent). The action and its row run as one
    /// detached task: a caller that goes away (a cancelled call drops this future) cannot
    /// leave an action done and unaudited between its commit and its row.
    async fn audited<T, W, F>(&self, row: Row, work: W) -> Result<T, Status>
    where
        W: FnOnce(Arc<dyn AccountControl>) -> F,
        F: Future<Output = Result<(T, serde_json::Value), Status>> + Send + 'static,
        T: Send + 'static,
    {
        let audit = self.audit.clone();
        let action = work(self.control.clone());
        let task = tokio::spawn(async move {
            let result = action.await;
            let (outcome, details) = match &result {
                Ok((_, details)) => ("OK".to_owned(), details.to_string()),
                Err(status) => (code_name(status.code()).to_owned(), "{}".to_owned()),
            };
            let entry = AuditEntry {
                entry_id: Uuid::now_v7(),
                at: chrono::Utc::now(),
                operator: row.operator,
                action: row.action.to_owned(),
                target: row.target,
                reason: row.reason,
                outcome,
                details,
            };
            // The target only by kind: a phone number looked up stays out of the logs.
            let kind = entry.target.split(':').next().unwrap_or_default();
            tracing::info!(operator = %entry.operator, action = %entry.action, target_kind = %kind,
                outcome = %entry.outcome, "admin action");
            audit.append_audit(&entry).await?;
            result.map(|(value, _)| value)
        });
        task.await
            .map_err(|error| Status::internal(format!("admin action task: {error}")))?
    }

    /// A not-yet-built RPC: authenticated, audited, UNIMPLEMENTED naming issue 21.
    async fn not_yet<T>(
        &self,
        operator: String,
        action: &'static str,
        target: String,
        reason: &str,
    ) -> Reply<T> {
        let refused = Status::from(Failure::reason(
            Code::Unimplemented,
            "UNIMPLEMENTED_YET",
            format!("AdminService.{action} is not built yet (issue 21)"),
        ));
        let row = Row::new(operator, action, target, reason);
        let answer = refused.clone();
        let work = move |_| std::future::ready(Err::<((), serde_json::Value), _>(answer));
        match self.audited(row, work).await {
            // The audit row could not be written: that failure is the answer.
            Err(status) if status.code() != Code::Unimplemented => Err(status),
            _ => Err(refused),
        }
    }
}

/// The audit row of a call, before its outcome.
struct Row {
    operator: String,
    action: &'static str,
    target: String,
    reason: String,
}

impl Row {
    /// The row; `target` and `reason` as given, made storable (control characters dropped,
    /// cut to their limits) since a refused call is recorded too.
    fn new(operator: String, action: &'static str, target: String, reason: &str) -> Self {
        Self {
            operator,
            action,
            target,
            reason: storable(reason, MAX_REASON),
        }
    }
}

/// `input` without control characters, at most `max` characters.
fn storable(input: &str, max: usize) -> String {
    input
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect()
}

/// The audit target naming a user, from the id as given.
fn user_target(user_id: &str) -> String {
    format!("user:{}", storable(user_id, MAX_TARGET))
}

/// The gRPC code's canonical name, as the audit log records outcomes.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The user id and reason of a mutating request on a user, or INVALID_ARGUMENT naming each bad
/// field.
fn user_and_reason(user_id: &str, reason: &str) -> Result<(UserId, String), Status> {
    let mut check = Check::default();
    let user = check.id_of::<UserId>("user_id", user_id);
    let reason = check.text("reason", reason, MAX_REASON, true);
    check.finish()?;
    Ok((user.expect("checked"), reason))
}

fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::from(at))
}

fn account(status: AccountStatus) -> pb::Account {
    let (suspended_at, suspension_reason) = match status.suspended {
        Some((at, reason)) => (Some(timestamp(at)), reason),
        None => (None, String::new()),
    };
    pb::Account {
        user_id: status.account.user_id.to_string(),
        phone_number: status.account.phone_number,
        display_name: status.account.display_name,
        created_at: Some(timestamp(status.account.created_at)),
        suspended_at,
        suspension_reason,
        active_sessions: i32::try_from(status.active_sessions).unwrap_or(i32::MAX),
    }
}

fn entry(entry: AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        entry_id: entry.entry_id.to_string(),
        at: Some(timestamp(entry.at)),
        operator: entry.operator,
        action: entry.action,
        target: entry.target,
        reason: entry.reason,
        outcome: entry.outcome,
        details: entry.details,
    }
}

/// A report of the message service's moderation record as operators see it.
fn report(report: msg::ModerationReport) -> pb::Report {
    let reason = msg::ReportReason::try_from(report.reason)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("REPORT_REASON_")
                .to_owned()
        })
        .unwrap_or_default();
    pb::Report {
        report_id: report.report_id,
        conversation_id: report.conversation_id,
        message_id: report.message_id,
        reporter_id: report.reporter_user_id,
        reason,
        note: report.note,
        created_at: report.created_at,
        resolved_at: report.resolved_at,
        resolution: report.resolution,
        message: report.message,
        resolved_by: report.resolved_by,
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_reports(
        &self,
        request: Request<pb::ListReportsRequest>,
    ) -> Reply<pb::ListReportsResponse> {
        let operator = self.operators.caller(&request)?;
        let body = request.into_inner();
        let row = Row::new(operator, "ListReports", String::new(), "");
        let messages = self.messages.clone();
        let response = self
            .audited(row, move |_| async move {
                let mut check = Check::default();
                let page = check.page::<Uuid>(body.page_size, &body.page_token, REPORT_PAGE);
                check.finish()?;
                let reports = messages
                    .reports(msg::ListModerationReportsRequest {
                        after_report_id: page.after.map(|id| id.to_string()).unwrap_or_default(),
                        limit: i32::try_from(page.fetch_limit()).unwrap_or(i32::MAX),
                        include_resolved: body.include_resolved,
                    })
                    .await?;
                let (reports, next_page_token) = page.finish(reports, |r| {
                    Uuid::try_parse(&r.report_id).unwrap_or_default()
                });
                let details = serde_json::json!({ "reports": reports.len() });
                let response = pb::ListReportsResponse {
                    reports: reports.into_iter().map(report).collect(),
                    next_page_token,
                };
                Ok((response, details))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn resolve_report(
        &self,
        request: Request<pb::ResolveReportRequest>,
    ) -> Reply<pb::ResolveReportResponse> {
        let operator = self.operators.caller(&request)?;
        let body = request.into_inner();
        let target = format!("report:{}", storable(&body.report_id, MAX_TARGET));
        let row = Row::new(operator.clone(), "ResolveReport", target, &body.reason);
        let messages = self.messages.clone();
        let response = self
            .audited(row, move |_| async move {
                let mut check = Check::default();
                let id = check.id_of::<Uuid>("report_id", &body.report_id);
                let resolution = check.text("resolution", &body.resolution, MAX_REASON, true);
                check.text("reason", &body.reason, MAX_REASON, true);
                check.finish()?;
                let resolved = messages
                    .resolve(msg::ResolveModerationReportRequest {
                        report_id: id.expect("checked").to_string(),
                        resolution,
                        resolved_by: operator,
                    })
                    .await?;
                let details = serde_json::json!({
                    "message_id": resolved.message_id,
                    "resolution": resolved.resolution,
                });
                let response = pb::ResolveReportResponse {
                    report: Some(report(resolved)),
                };
                Ok((response, details))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn suspend_user(
        &self,
        request: Request<pb::SuspendUserRequest>,
    ) -> Reply<pb::SuspendUserResponse> {
        let operator = self.operators.caller(&request)?;
        let body = request.into_inner();
        let row = Row::new(
            operator,
            "SuspendUser",
            user_target(&body.user_id),
            &body.reason,
        );
        let response = self
            .audited(row, move |control| async move {
                let (user, reason) = user_and_reason(&body.user_id, &body.reason)?;
                let (status, ended) = control.suspend(user, &reason).await?;
                let details = serde_json::json!({ "sessions_ended": ended });
                let response = pb::SuspendUserResponse {
                    account: Some(account(status)),
                    sessions_ended: i32::try_from(ended).unwrap_or(i32::MAX),
                };
                Ok((response, details))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn unsuspend_user(
        &self,
        request: Request<pb::UnsuspendUserRequest>,
    ) -> Reply<pb::UnsuspendUserResponse> {
        let operator = self.operators.caller(&request)?;
        let body = request.into_inner();
        let row = Row::new(
            operator,
            "UnsuspendUser",
            user_target(&body.user_id),
            &body.reason,
        );
        let response = self
            .audited(row, move |control| async move {
                let (user, _reason) = user_and_reason(&body.user_id, &body.reason)?;
                let status = control.unsuspend(user).await?;
                let response = pb::UnsuspendUserResponse {
                    account: Some(account(status)),
                };
                Ok((response, serde_json::json!({})))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn revoke_sessions(
        &self,
        request: Request<pb::RevokeSessionsRequest>,
    ) -> Reply<pb::RevokeSessionsResponse> {
        let operator = self.operators.caller(&request)?;
        let body = request.into_inner();
        let row = Row::new(
            operator,
            "RevokeSessions",
            user_target(&body.user_id),
            &body.reason,
        );
        let response = self
            .audited(row, move |control| async move {
                let (user, _reason) = user_and_reason(&body.user_id, &body.reason)?;
                let ended = control.revoke_sessions(user).await?;
                let details = serde_json::json!({ "sessions_ended": ended });
                let response = pb::RevokeSessionsResponse {
                    sessions_ended: i32::try_from(ended).unwrap_or(i32::MAX),
                };
                Ok((response, details))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn disconnect_device(
        &self,
        request: Request<pb::DisconnectDeviceRequest>,
    ) -> Reply<pb::DisconnectDeviceResponse> {
        let operator = self.operators.caller(&request)?;
        let body = request.into_inner();
        let target = format!(
            "user:{} device:{}",
            storable(&body.user_id, MAX_TARGET),
            storable(&body.device_id, MAX_TARGET)
        );
        self.not_yet(operator, "DisconnectDevice", target, &body.reason)
            .await
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Reply<pb::DeleteUserResponse> {
        let operator = self.operators.caller(&request)?;
        let body = request.into_inner();
        let row = Row::new(
            operator,
            "DeleteUser",
            user_target(&body.user_id),
            &body.reason,
        );
        let response = self
            .audited(row, move |control| async move {
                let (user, _reason) = user_and_reason(&body.user_id, &body.reason)?;
                let ended = control.delete(user).await?;
                let details = serde_json::json!({ "sessions_ended": ended });
                Ok((pb::DeleteUserResponse {}, details))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn purge_conversation_messages(
        &self,
        request: Request<pb::PurgeConversationMessagesRequest>,
    ) -> Reply<pb::PurgeConversationMessagesResponse> {
        let operator = self.operators.caller(&request)?;
        let body = request.into_inner();
        let target = format!(
            "conversation:{}",
            storable(&body.conversation_id, MAX_TARGET)
        );
        let row = Row::new(operator, "PurgeConversationMessages", target, &body.reason);
        let messages = self.messages.clone();
        let response = self
            .audited(row, move |_| async move {
                let mut check = Check::default();
                let conversation = check.id_of::<Uuid>("conversation_id", &body.conversation_id);
                if body.before.is_none() {
                    check.push("before", "is required");
                }
                check.text("reason", &body.reason, MAX_REASON, true);
                check.finish()?;
                let purged = messages
                    .purge(msg::PurgeMessagesRequest {
                        conversation_id: conversation.expect("checked").to_string(),
                        before: body.before,
                    })
                    .await?;
                let details = serde_json::json!({ "messages_purged": purged });
                let response = pb::PurgeConversationMessagesResponse {
                    messages_purged: purged,
                };
                Ok((response, details))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn lookup_user(
        &self,
        request: Request<pb::LookupUserRequest>,
    ) -> Reply<pb::LookupUserResponse> {
        use pb::lookup_user_request::Key;
        let operator = self.operators.caller(&request)?;
        let key = request.into_inner().key;
        let target = match &key {
            Some(Key::UserId(id)) => user_target(id),
            Some(Key::PhoneNumber(phone)) => format!("phone:{}", storable(phone, MAX_TARGET)),
            None => String::new(),
        };
        let row = Row::new(operator, "LookupUser", target, "");
        let response = self
            .audited(row, move |control| async move {
                let mut check = Check::default();
                let key = match &key {
                    Some(Key::UserId(id)) => {
                        check.id_of::<UserId>("user_id", id).map(AccountKey::Id)
                    }
                    Some(Key::PhoneNumber(phone)) => check
                        .parse("phone_number", PhoneNumber::parse(phone))
                        .map(AccountKey::Phone),
                    None => {
                        check.push("key", "is required: give user_id or phone_number");
                        None
                    }
                };
                check.finish()?;
                let status = control.lookup(&key.expect("checked")).await?;
                let details = serde_json::json!({ "user_id": status.account.user_id.to_string() });
                let response = pb::LookupUserResponse {
                    account: Some(account(status)),
                };
                Ok((response, details))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn list_audit_log(
        &self,
        request: Request<pb::ListAuditLogRequest>,
    ) -> Reply<pb::ListAuditLogResponse> {
        self.operators.caller(&request)?;
        let body = request.into_inner();
        let mut check = Check::default();
        let page = check.page::<Uuid>(body.page_size, &body.page_token, AUDIT_PAGE);
        check.finish()?;
        let entries = self
            .audit
            .audit_log(page.after, page.fetch_limit() as i64)
            .await?;
        let (entries, next_page_token) = page.finish(entries, |e| e.entry_id);
        Ok(Response::new(pb::ListAuditLogResponse {
            entries: entries.into_iter().map(entry).collect(),
            next_page_token,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_are_found_by_their_token_only() {
        let hash = |t: &str| -> [u8; 32] { Sha256::digest(t.as_bytes()).into() };
        let operators = Operators::new(vec![
            Operator {
                name: "alice".into(),
                sha256: hash("alice-token"),
            },
            Operator {
                name: "bob".into(),
                sha256: hash("bob-token"),
            },
        ]);
        assert_eq!(operators.find("alice-token"), Some("alice"));
        assert_eq!(operators.find("bob-token"), Some("bob"));
        assert_eq!(operators.find("alice-token "), None);
        assert_eq!(operators.find(""), None);
        assert_eq!(Operators::default().find("alice-token"), None);
    }
}
