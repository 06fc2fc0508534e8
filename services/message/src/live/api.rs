//! Live delivery's RPCs (live.proto): the Subscribe stream and SetTyping.

use echo_authn::Caller;
use echo_proto::echo::message::v1 as pb;
use echo_runtime::{Check, Failure};
use tonic::{Request, Response, Status};

use super::{Cursor, LiveError, SubscribeStream};
use crate::api::{MessageApi, Reply, actor, finish};
use crate::events::timestamp;
use crate::store::Actor;

/// Longest cursor accepted (live.proto).
const MAX_CURSOR_CHARS: usize = 256;

pub(crate) async fn subscribe(
    api: &MessageApi,
    request: Request<pb::SubscribeRequest>,
) -> Reply<SubscribeStream> {
    let caller = Caller::of(&request).map_err(|e| Status::from(Failure::from(e)))?;
    let actor = Actor {
        user_id: caller.user_id,
        device_id: caller.device_id,
    };
    let session = caller.session_id;
    let text = request.into_inner().cursor;
    let cursor = match text.as_str() {
        "" => None,
        text => {
            let cursor = (text.len() <= MAX_CURSOR_CHARS)
                .then(|| Cursor::decode(text))
                .flatten();
            let refused = || {
                Failure::invalid(
                    "cursor",
                    "not a cursor this server issued: pass the `cursor` of a SubscribeResponse, \
                     or an empty one to start from now",
                )
            };
            Some(cursor.ok_or_else(refused)?)
        }
    };
    let stream = api
        .conversations
        .live
        .subscribe(actor, session, cursor)
        .await
        .map_err(unavailable)?;
    Ok(Response::new(stream))
}

pub(crate) async fn set_typing(
    api: &MessageApi,
    request: Request<pb::SetTypingRequest>,
) -> Reply<pb::SetTypingResponse> {
    let actor = actor(&request)?;
    let mut check = Check::new();
    let conversation_id = check.id_of("conversation_id", &request.get_ref().conversation_id);
    finish(check)?;
    let expires_at = api
        .conversations
        .set_typing(
            actor,
            conversation_id.expect("checked"),
            request.get_ref().typing,
        )
        .await?;
    Ok(Response::new(pb::SetTypingResponse {
        expires_at: expires_at.map(timestamp),
    }))
}

fn unavailable(error: LiveError) -> Status {
    tracing::warn!(%error, "a stream could not open");
    Failure::unavailable(
        "DEPENDENCY_UNAVAILABLE",
        "the event log cannot be read right now; retry with your cursor",
        std::time::Duration::from_secs(1),
    )
    .into()
}
