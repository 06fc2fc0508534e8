//! Reactions and pins end to end through the generated gRPC client, on both backends: adding,
//! taking back and listing reactions, pinning and listing pins, how every read of a message
//! shows them (reacted_by_me per caller, pinned), the caps, and the denials a stranger, a
//! MEMBER, a blocked user and a malformed emoji meet.

use common::messages::*;
use common::users::{block, known_user};
use common::{reason, violated_fields};
use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, SignedIn, TestMesh};
use tonic::Code;

mod common;

fn add_request(message: &pb::Message, emoji: &str) -> pb::AddReactionRequest {
    pb::AddReactionRequest {
        conversation_id: message.conversation_id.clone(),
        message_id: message.message_id.clone(),
        emoji: emoji.into(),
    }
}

fn remove_request(message: &pb::Message, emoji: &str) -> pb::RemoveReactionRequest {
    pb::RemoveReactionRequest {
        conversation_id: message.conversation_id.clone(),
        message_id: message.message_id.clone(),
        emoji: emoji.into(),
    }
}

fn pin_request(message: &pb::Message) -> pb::PinMessageRequest {
    pb::PinMessageRequest {
        conversation_id: message.conversation_id.clone(),
        message_id: message.message_id.clone(),
    }
}

fn unpin_request(message: &pb::Message) -> pb::UnpinMessageRequest {
    pb::UnpinMessageRequest {
        conversation_id: message.conversation_id.clone(),
        message_id: message.message_id.clone(),
    }
}

/// `user` reacts; the summary the response carries, as (emoji, count, reacted_by_me).
async fn react(
    mesh: &TestMesh,
    user: &SignedIn,
    message: &pb::Message,
    emoji: &str,
) -> Vec<(String, i32, bool)> {
    let response = mesh
        .message_as(user)
        .add_reaction(add_request(message, emoji))
        .await
        .expect("add reaction");
    summary(&response.into_inner().reactions)
}

fn summary(reactions: &[pb::ReactionCount]) -> Vec<(String, i32, bool)> {
    reactions
        .iter()
        .map(|r| (r.emoji.clone(), r.count, r.reacted_by_me))
        .collect()
}

fn tally(emoji: &str, count: i32, mine: bool) -> (String, i32, bool) {
    (emoji.to_owned(), count, mine)
}

/// `message` as `user` reads it with GetMessage and in ListMessages, which must agree.
async fn read_as(mesh: &TestMesh, user: &SignedIn, message: &pb::Message) -> pb::Message {
    let got = mesh
        .message_as(user)
        .get_message(pb::GetMessageRequest {
            conversation_id: message.conversation_id.clone(),
            message_id: message.message_id.clone(),
        })
        .await
        .expect("get message")
        .into_inner()
        .message
        .unwrap();
    let listed = mesh
        .message_as(user)
        .list_messages(pb::ListMessagesRequest {
            conversation_id: message.conversation_id.clone(),
            ..Default::default()
        })
        .await
        .expect("list messages")
        .into_inner()
        .messages;
    let in_list = listed
        .into_iter()
        .find(|m| m.message_id == message.message_id)
        .expect("listed");
    assert_eq!(in_list, got, "GetMessage and ListMessages agree");
    got
}

async fn last_seq(mesh: &TestMesh, user: &SignedIn, conversation: &pb::Conversation) -> i64 {
    my_view(mesh, user, conversation).await.last_seq
}

async fn list_reactions(
    mesh: &TestMesh,
    user: &SignedIn,
    request: pb::ListReactionsRequest,
) -> pb::ListReactionsResponse {
    mesh.message_as(user)
        .list_reactions(request)
        .await
        .expect("list reactions")
        .into_inner()
}

#[tokio::test]
async fn reactions_show_in_every_read_per_caller() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let cy = known_user(&mesh).await;
        let team = group(&mesh, &ada, pb::ConversationType::Group, &[&bob, &cy]).await;
        let message = send(&mesh, &ada, &team, "lunch?").await;
        let before = last_seq(&mesh, &ada, &team).await;

        assert_eq!(
            react(&mesh, &bob, &message, "👍").await,
            [tally("👍", 1, true)],
            "{backend:?}"
        );
        assert_eq!(
            react(&mesh, &cy, &message, "👍").await,
            [tally("👍", 2, true)]
        );
        let both = react(&mesh, &cy, &message, "🍕").await;
        assert_eq!(both, [tally("👍", 2, true), tally("🍕", 1, true)]);
        assert_eq!(last_seq(&mesh, &ada, &team).await, before + 3);
        // A retry is OK and changes nothing (no seq).
        let again = react(&mesh, &bob, &message, "👍").await;
        assert_eq!(again, [tally("👍", 2, true), tally("🍕", 1, false)]);
        assert_eq!(last_seq(&mesh, &ada, &team).await, before + 3);

        // Every read shows the summary in first-reaction order, reacted_by_me per caller.
        for (user, thumbs, pizza) in [(&ada, false, false), (&bob, true, false), (&cy, true, true)]
        {
            let seen = read_as(&mesh, user, &message).await;
            assert_eq!(
                summary(&seen.reactions),
                [tally("👍", 2, thumbs), tally("🍕", 1, pizza)]
            );
            assert!(!seen.pinned);
        }

        // Who reacted, oldest first, filtered, paged.
        let all = pb::ListReactionsRequest {
            conversation_id: team.conversation_id.clone(),
            message_id: message.message_id.clone(),
            ..Default::default()
        };
        let listed = list_reactions(&mesh, &ada, all.clone()).await;
        let who: Vec<(String, String)> = listed
            .reactions
            .iter()
            .map(|r| (r.user_id.clone(), r.emoji.clone()))
            .collect();
        let id = |user: &SignedIn| user.tokens.user_id.clone();
        assert_eq!(
            who,
            [
                (id(&bob), "👍".to_owned()),
                (id(&cy), "👍".to_owned()),
                (id(&cy), "🍕".to_owned())
            ]
        );
        assert!(listed.reactions.iter().all(|r| r.created_at.is_some()));
        assert_eq!(listed.next_page_token, "");
        let pizza_only = pb::ListReactionsRequest {
            emoji: "🍕".into(),
            ..all.clone()
        };
        let pizza = list_reactions(&mesh, &bob, pizza_only).await.reactions;
        assert_eq!((pizza.len(), pizza[0].user_id.clone()), (1, id(&cy)));
        let mut request = pb::ListReactionsRequest {
            page_size: 2,
            ..all.clone()
        };
        let first = list_reactions(&mesh, &cy, request.clone()).await;
        assert_eq!(first.reactions, listed.reactions[..2]);
        request.page_token = first.next_page_token;
        let second = list_reactions(&mesh, &cy, request.clone()).await;
        assert_eq!(second.reactions, listed.reactions[2..]);
        assert_eq!(second.next_page_token, "");
        // A token is bound to its filter.
        request.emoji = "🍕".into();
        let foreign = mesh.message_as(&cy).list_reactions(request).await;
        assert_eq!(violated_fields(&foreign.unwrap_err()), ["page_token"]);

        // Taking back: the count after it; absent is OK with no seq.
        let response = mesh
            .message_as(&bob)
            .remove_reaction(remove_request(&message, "👍"))
            .await
            .unwrap();
        let left = summary(&response.into_inner().reactions);
        assert_eq!(left, [tally("👍", 1, false), tally("🍕", 1, false)]);
        let seq = last_seq(&mesh, &ada, &team).await;
        assert_eq!(seq, before + 4);
        mesh.message_as(&bob)
            .remove_reaction(remove_request(&message, "👍"))
            .await
            .unwrap();
        assert_eq!(last_seq(&mesh, &ada, &team).await, seq);

        // CHANNEL members react too.
        let channel = group(&mesh, &ada, pb::ConversationType::Channel, &[&bob]).await;
        let post = send(&mesh, &ada, &channel, "release notes").await;
        assert_eq!(
            react(&mesh, &bob, &post, "🎉").await,
            [tally("🎉", 1, true)]
        );
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn pins_show_in_every_read_and_list_newest_first() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let team = group(&mesh, &ada, pb::ConversationType::Group, &[&bob]).await;
        let first = send(&mesh, &ada, &team, "agenda").await;
        let second = send(&mesh, &bob, &team, "minutes").await;
        react(&mesh, &bob, &first, "👀").await;

        let denied = mesh
            .message_as(&bob)
            .pin_message(pin_request(&first))
            .await
            .unwrap_err();
        assert_eq!(
            (denied.code(), reason(&denied).as_str()),
            (Code::PermissionDenied, "NOT_ALLOWED"),
            "{backend:?}"
        );
        let before = last_seq(&mesh, &ada, &team).await;
        let pin = |message: &pb::Message| {
            let request = pin_request(message);
            let mut client = mesh.message_as(&ada);
            async move {
                let response = client.pin_message(request).await.expect("pin");
                response.into_inner().pin.unwrap()
            }
        };
        let pinned = pin(&first).await;
        assert_eq!(pinned.pinned_by_user_id, ada.tokens.user_id);
        let shown = pinned.message.clone().unwrap();
        assert!(shown.pinned);
        assert_eq!(shown.content, first.content);
        assert_eq!(summary(&shown.reactions), [tally("👀", 1, false)]);
        pin(&second).await;
        assert_eq!(last_seq(&mesh, &ada, &team).await, before + 2);
        // Pinning again answers the same pin, with no seq.
        assert_eq!(pin(&first).await, pinned);
        assert_eq!(last_seq(&mesh, &ada, &team).await, before + 2);

        for message in [&first, &second] {
            assert!(read_as(&mesh, &bob, message).await.pinned);
        }
        let list = |page_size: i32, page_token: String| {
            let request = pb::ListPinsRequest {
                conversation_id: team.conversation_id.clone(),
                page_size,
                page_token,
            };
            let mut client = mesh.message_as(&bob);
            async move {
                let response = client.list_pins(request).await.expect("list pins");
                response.into_inner()
            }
        };
        let pins = list(0, String::new()).await;
        let order: Vec<String> = pins
            .pins
            .iter()
            .map(|p| p.message.as_ref().unwrap().message_id.clone())
            .collect();
        assert_eq!(
            order,
            [second.message_id.clone(), first.message_id.clone()],
            "newest pin first"
        );
        let bobs_view = pins.pins[1].message.as_ref().unwrap();
        assert_eq!(summary(&bobs_view.reactions), [tally("👀", 1, true)]);
        let page = list(1, String::new()).await;
        assert_eq!(page.pins, pins.pins[..1]);
        let rest = list(1, page.next_page_token).await;
        assert_eq!(
            (rest.pins.as_slice(), rest.next_page_token.as_str()),
            (&pins.pins[1..], "")
        );

        mesh.message_as(&ada)
            .unpin_message(unpin_request(&second))
            .await
            .unwrap();
        assert!(!read_as(&mesh, &ada, &second).await.pinned);
        assert_eq!(list(0, String::new()).await.pins.len(), 1);
        let seq = last_seq(&mesh, &ada, &team).await;
        assert_eq!(seq, before + 3);
        mesh.message_as(&ada)
            .unpin_message(unpin_request(&second))
            .await
            .unwrap();
        assert_eq!(last_seq(&mesh, &ada, &team).await, seq, "no-op");

        // Any member pins in a DIRECT conversation.
        let chat = direct(&mesh, &ada, &bob).await;
        let note = send(&mesh, &ada, &chat, "door code").await;
        let by_bob = mesh
            .message_as(&bob)
            .pin_message(pin_request(&note))
            .await
            .unwrap();
        assert_eq!(
            by_bob.into_inner().pin.unwrap().pinned_by_user_id,
            bob.tokens.user_id
        );
        assert!(read_as(&mesh, &ada, &note).await.pinned);
        mesh.shutdown().await;
    }
}

#[path = "message_reactions/denials.rs"]
mod denials;
