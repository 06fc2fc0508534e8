//! The writers: every user sends, edits, deletes (both kinds), reacts and moves their read
//! state in the groups they believe they are in; each owner removes, re-adds and adds members
//! and makes some leave.

use std::sync::Arc;
use std::time::Duration;

use echo_proto::echo::message::v1 as pb;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::common::messages::{send_request, text};
use crate::common::users::mask;
use crate::world::{GROUPS, USERS, World};

const EMOJI: [&str; 4] = ["👍", "🎉", "❤️", "😂"];

/// One user's actions until `until`.
pub async fn user_actor(world: Arc<World>, user: usize, seed: u64, until: Instant) {
    let mut rng = StdRng::seed_from_u64(seed);
    let clients: Vec<_> = world
        .instances()
        .iter()
        .map(|mesh| mesh.message_as(&world.users[user]))
        .collect();
    let mut sent = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(rng.random_range(60..180))).await;
        // Across instances, each call goes to either.
        let mut client = clients[world.instance(&mut rng).0].clone();
        let Some((group, own, any, newest)) = pick(&world, user, &mut rng) else {
            continue;
        };
        let conversation = &world.groups[group];
        let id = conversation.conversation_id.clone();
        match rng.random_range(0..100) {
            0..45 => {
                sent += 1;
                let key = uuid::Uuid::now_v7().to_string();
                let body = format!("u{user} #{sent}");
                let request = send_request(conversation, &key, text(&body));
                let answer = client.send_message(request).await;
                if let Some(answer) = world.check("send", answer) {
                    let message = answer.into_inner().message.expect("message");
                    let mut beliefs = world.beliefs.lock().expect("beliefs");
                    beliefs.messages[group].push((user, message));
                }
            }
            45..55 => {
                if let Some(message) = own {
                    let request = pb::EditMessageRequest {
                        conversation_id: id,
                        message_id: message.message_id,
                        content: Some(text(&format!("u{user} edited"))),
                        update_mask: mask(&["text"]),
                    };
                    world.check("edit", client.edit_message(request).await);
                }
            }
            55..65 => {
                let (target, scope) = if rng.random_bool(0.5) {
                    (own, pb::DeleteScope::ForEveryone)
                } else {
                    (any.clone(), pb::DeleteScope::ForMe)
                };
                if let Some(message) = target {
                    let request = pb::DeleteMessageRequest {
                        conversation_id: id,
                        message_id: message.message_id,
                        scope: scope.into(),
                    };
                    world.check("delete", client.delete_message(request).await);
                }
            }
            65..83 => {
                if let Some(message) = any {
                    let emoji = (*EMOJI.choose(&mut rng).expect("emoji")).to_owned();
                    if rng.random_bool(0.7) {
                        let request = pb::AddReactionRequest {
                            conversation_id: id,
                            message_id: message.message_id,
                            emoji,
                        };
                        world.check("react", client.add_reaction(request).await);
                    } else {
                        let request = pb::RemoveReactionRequest {
                            conversation_id: id,
                            message_id: message.message_id,
                            emoji,
                        };
                        world.check("unreact", client.remove_reaction(request).await);
                    }
                }
            }
            83..93 => {
                if let Some(seq) = newest {
                    let request = pb::MarkReadRequest {
                        conversation_id: id,
                        last_read_seq: seq,
                    };
                    world.check("mark read", client.mark_read(request).await);
                }
            }
            _ => {
                let request = archive(id, rng.random_bool(0.5));
                world.check("settings", client.update_member_settings(request).await);
            }
        }
    }
}

/// Archive or unarchive: a per-user settings event whenever it changes something.
pub fn archive(conversation_id: String, archived: bool) -> pb::UpdateMemberSettingsRequest {
    pb::UpdateMemberSettingsRequest {
        conversation_id,
        settings: Some(pb::MemberSettings {
            archived,
            ..Default::default()
        }),
        update_mask: mask(&["archived"]),
    }
}

/// A group `user` believes they are in, one of their messages there, any message there, and
/// the newest seq known there.
type Pick = (usize, Option<pb::Message>, Option<pb::Message>, Option<i64>);

fn pick(world: &World, user: usize, rng: &mut StdRng) -> Option<Pick> {
    let beliefs = world.beliefs.lock().expect("beliefs");
    let mine: Vec<usize> = (0..GROUPS)
        .filter(|g| beliefs.members[*g].contains(&user))
        .collect();
    let group = *mine.choose(rng)?;
    let messages = &beliefs.messages[group];
    let recent = &messages[messages.len().saturating_sub(20)..];
    let own: Vec<&pb::Message> = recent
        .iter()
        .filter(|(sender, _)| *sender == user)
        .map(|(_, m)| m)
        .collect();
    let own = own.choose(rng).map(|m| (*m).clone());
    let any = recent.choose(rng).map(|(_, m)| m.clone());
    let newest = messages.last().map(|(_, m)| m.seq);
    Some((group, own, any, newest))
}

/// The owner of `group` changes its membership until `until`.
pub async fn membership_actor(world: Arc<World>, group: usize, seed: u64, until: Instant) {
    let mut rng = StdRng::seed_from_u64(seed);
    let id = world.groups[group].conversation_id.clone();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(rng.random_range(250..500))).await;
        let (members, gone) = {
            let beliefs = world.beliefs.lock().expect("beliefs");
            (beliefs.members[group].clone(), beliefs.gone[group].clone())
        };
        let others: Vec<usize> = members.iter().copied().filter(|m| *m != group).collect();
        let strangers: Vec<usize> = (0..USERS)
            .filter(|u| !members.contains(u) && !gone.contains(u))
            .collect();
        let gone: Vec<usize> = gone.into_iter().collect();
        let roll = rng.random_range(0..100);
        let mesh = world.instance(&mut rng).1;
        let client = |user: usize| mesh.message_as(&world.users[user]);
        if roll < 35 && others.len() > 3 {
            let member = *others.choose(&mut rng).expect("members");
            let request = pb::RemoveMemberRequest {
                conversation_id: id.clone(),
                user_id: world.users[member].tokens.user_id.clone(),
            };
            let removed = world.check("remove", client(group).remove_member(request).await);
            if removed.is_some() {
                moved_out(&world, group, member);
            }
        } else if roll < 50 && others.len() > 3 {
            let member = *others.choose(&mut rng).expect("members");
            let request = pb::LeaveConversationRequest {
                conversation_id: id.clone(),
            };
            let left = world.check("leave", client(member).leave_conversation(request).await);
            if left.is_some() {
                moved_out(&world, group, member);
            }
        } else {
            let pool = if roll < 80 || strangers.is_empty() {
                &gone
            } else {
                &strangers
            };
            let Some(user) = pool.choose(&mut rng).copied() else {
                continue;
            };
            let request = pb::AddMembersRequest {
                conversation_id: id.clone(),
                user_ids: vec![world.users[user].tokens.user_id.clone()],
            };
            let added = world.check("add", client(group).add_members(request).await);
            if added.is_some() {
                let mut beliefs = world.beliefs.lock().expect("beliefs");
                beliefs.members[group].insert(user);
                beliefs.gone[group].remove(&user);
            }
        }
    }
}

fn moved_out(world: &World, group: usize, user: usize) {
    let mut beliefs = world.beliefs.lock().expect("beliefs");
    beliefs.members[group].remove(&user);
    beliefs.gone[group].insert(user);
}
