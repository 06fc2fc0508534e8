//! Full-text search and threads.

use echo_proto::echo::message::v1 as pb;
use echo_runtime::Check;
use tonic::{Request, Response};

use super::{MessageApi, Reply, actor, finish, optional_id};
use crate::search::{SEARCH_PAGE, SearchPosition, SearchQuery, THREAD_PAGE, ThreadPosition};

pub(super) async fn list_thread(
    api: &MessageApi,
    request: Request<pb::ListThreadRequest>,
) -> Reply<pb::ListThreadResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let conversation = check.id("conversation_id", &body.conversation_id);
    let root = check.id("root_message_id", &body.root_message_id);
    let page = check.page::<ThreadPosition>(body.page_size, &body.page_token, THREAD_PAGE);
    finish(check)?;
    let thread = api
        .conversations
        .thread(
            actor.user_id,
            conversation.expect("checked"),
            root.expect("checked"),
            &page,
        )
        .await?;
    let root = api
        .conversations
        .present(actor.user_id, std::slice::from_ref(&thread.root))
        .await?;
    Ok(Response::new(pb::ListThreadResponse {
        root: root.into_iter().next(),
        replies: api
            .conversations
            .present(actor.user_id, &thread.replies)
            .await?,
        next_page_token: thread.next_page_token,
    }))
}

pub(super) async fn search_messages(
    api: &MessageApi,
    request: Request<pb::SearchMessagesRequest>,
) -> Reply<pb::SearchMessagesResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let query = check.parse("query", SearchQuery::parse(&body.query));
    let conversation = optional_id(&mut check, "conversation_id", &body.conversation_id);
    let page = check.page::<SearchPosition>(body.page_size, &body.page_token, SEARCH_PAGE);
    finish(check)?;
    let query = query.expect("checked");
    let (hits, next_page_token) = api
        .conversations
        .search(actor, &query, conversation, &page)
        .await?;
    let messages: Vec<_> = hits.iter().map(|hit| hit.message.clone()).collect();
    let seen = api.conversations.present(actor.user_id, &messages).await?;
    let results = seen
        .into_iter()
        .zip(hits)
        .map(|(message, hit)| pb::SearchResult {
            message: Some(message),
            snippet: hit.snippet,
        })
        .collect();
    Ok(Response::new(pb::SearchMessagesResponse {
        results,
        next_page_token,
    }))
}
