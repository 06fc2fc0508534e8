//! ReportMessage (report_api.proto): parse and validate, take the caller, call the journey.

use echo_proto::echo::message::v1 as pb;
use echo_runtime::Check;
use tonic::{Request, Response};

use super::MAX_NOTE;
use crate::api::{MessageApi, Reply, actor, finish, message_target};

pub(crate) async fn report_message(
    api: &MessageApi,
    request: Request<pb::ReportMessageRequest>,
) -> Reply<pb::ReportMessageResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let (conversation_id, message_id) =
        message_target(&mut check, &body.conversation_id, &body.message_id);
    let reason = match pb::ReportReason::try_from(body.reason) {
        Ok(pb::ReportReason::Unspecified) | Err(_) => {
            check.push(
                "reason",
                "must be one of REPORT_REASON_SPAM, _HARASSMENT, _HATE, _VIOLENCE, \
                 _SEXUAL_CONTENT, _SELF_HARM, _ILLEGAL, _OTHER",
            );
            pb::ReportReason::Unspecified
        }
        Ok(reason) => reason,
    };
    let note = body.note.trim();
    if note.chars().count() > MAX_NOTE {
        check.push("note", format!("must be at most {MAX_NOTE} characters"));
    } else {
        check.printable("note", note, true);
    }
    finish(check)?;
    let report_id = api
        .conversations
        .report(actor, conversation_id, message_id, reason, note.to_owned())
        .await?;
    Ok(Response::new(pb::ReportMessageResponse {
        report_id: report_id.to_string(),
    }))
}
