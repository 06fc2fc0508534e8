//! The caller's own state in a conversation (private settings, read watermark, delivery
//! receipts) and the receipts of others.

use chrono::{DateTime, SubsecRound, Utc};
use echo_proto::echo::message::v1 as pb;
use echo_runtime::Check;
use tonic::{Request, Response};

use super::events::member_settings;
use crate::api::{MessageApi, Reply, actor, finish};
use crate::events::timestamp;
use crate::read_state::{MUTE_FOREVER_SECONDS, RECEIPT_PAGE};
use crate::store::{DeviceReceipt, MemberReceipt, SettingsChange};

/// The settings UpdateMemberSettings may change (paths of `MemberSettings`).
const SETTINGS_PATHS: [&str; 3] = ["mute_until", "pinned", "archived"];

pub(crate) async fn update_member_settings(
    api: &MessageApi,
    request: Request<pb::UpdateMemberSettingsRequest>,
) -> Reply<pb::UpdateMemberSettingsResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let conversation_id = check.id_of("conversation_id", &body.conversation_id);
    let paths = check.mask(body.update_mask, &SETTINGS_PATHS);
    let settings = body.settings.unwrap_or_default();
    let mut change = SettingsChange::default();
    for path in &paths {
        match path.as_str() {
            "mute_until" => change.mute_until = Some(mute_until(&mut check, &settings)),
            "pinned" => change.pinned = Some(settings.pinned),
            _ => change.archived = Some(settings.archived),
        }
    }
    finish(check)?;
    let member = api
        .conversations
        .update_settings(actor, conversation_id.expect("checked"), change)
        .await?;
    Ok(Response::new(pb::UpdateMemberSettingsResponse {
        settings: Some(member_settings(&member)),
    }))
}

pub(crate) async fn mark_read(
    api: &MessageApi,
    request: Request<pb::MarkReadRequest>,
) -> Reply<pb::MarkReadResponse> {
    let actor = actor(&request)?;
    let mut check = Check::new();
    let conversation_id = check.id_of("conversation_id", &request.get_ref().conversation_id);
    let up_to = seq(&mut check, "last_read_seq", request.get_ref().last_read_seq);
    finish(check)?;
    let member = api
        .conversations
        .mark_read(actor, conversation_id.expect("checked"), up_to)
        .await?;
    Ok(Response::new(pb::MarkReadResponse {
        last_read_seq: member.last_read_seq,
        unread_count: member.unread_count,
        mention_count: member.mention_count,
    }))
}

pub(crate) async fn mark_delivered(
    api: &MessageApi,
    request: Request<pb::MarkDeliveredRequest>,
) -> Reply<pb::MarkDeliveredResponse> {
    let actor = actor(&request)?;
    let mut check = Check::new();
    let conversation_id = check.id_of("conversation_id", &request.get_ref().conversation_id);
    let up_to = seq(&mut check, "up_to_seq", request.get_ref().up_to_seq);
    finish(check)?;
    let delivered = api
        .conversations
        .mark_delivered(actor, conversation_id.expect("checked"), up_to)
        .await?;
    Ok(Response::new(pb::MarkDeliveredResponse {
        delivered_up_to_seq: delivered.receipt.delivered_up_to_seq,
    }))
}

pub(crate) async fn get_read_state(
    api: &MessageApi,
    request: Request<pb::GetReadStateRequest>,
) -> Reply<pb::GetReadStateResponse> {
    let actor = actor(&request)?;
    let mut check = Check::new();
    let conversation_id = check.id_of("conversation_id", &request.get_ref().conversation_id);
    finish(check)?;
    let state = api
        .conversations
        .read_state(actor.user_id, conversation_id.expect("checked"))
        .await?;
    Ok(Response::new(pb::GetReadStateResponse {
        last_read_seq: state.member.last_read_seq,
        unread_count: state.member.unread_count,
        mention_count: state.member.mention_count,
        last_seq: state.last_seq,
        devices: state.devices.iter().map(device_receipt).collect(),
    }))
}

pub(crate) async fn list_receipts(
    api: &MessageApi,
    request: Request<pb::ListReceiptsRequest>,
) -> Reply<pb::ListReceiptsResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let conversation_id = check.id_of("conversation_id", &body.conversation_id);
    let min_seq = seq(&mut check, "min_seq", body.min_seq);
    let page = check.page(body.page_size, &body.page_token, RECEIPT_PAGE);
    finish(check)?;
    let (receipts, next_page_token) = api
        .conversations
        .receipts(
            actor.user_id,
            conversation_id.expect("checked"),
            min_seq,
            &page,
        )
        .await?;
    Ok(Response::new(pb::ListReceiptsResponse {
        receipts: receipts.iter().map(member_receipt).collect(),
        next_page_token,
    }))
}

/// A seq argument: 0 or more.
fn seq(check: &mut Check, field: &str, value: i64) -> i64 {
    if value < 0 {
        check.push(field, "must not be negative");
    }
    value.max(0)
}

/// The requested `mute_until` (None: unset), checked as a timestamp up to the end of year
/// 9999, at the microseconds storage keeps.
fn mute_until(check: &mut Check, settings: &pb::MemberSettings) -> Option<DateTime<Utc>> {
    let wire = settings.mute_until.as_ref()?;
    let nanos = u32::try_from(wire.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000);
    let at = nanos
        .filter(|_| wire.seconds <= MUTE_FOREVER_SECONDS)
        .and_then(|nanos| DateTime::from_timestamp(wire.seconds, nanos));
    if at.is_none() {
        check.push(
            "settings.mute_until",
            "must be a valid timestamp no later than 9999-12-31T23:59:59Z",
        );
    }
    at.map(|at| at.trunc_subsecs(6))
}

fn device_receipt(receipt: &DeviceReceipt) -> pb::DeviceReceipt {
    pb::DeviceReceipt {
        device_id: receipt.device_id.to_string(),
        delivered_up_to_seq: receipt.delivered_up_to_seq,
        delivered_at: receipt.delivered_at.map(timestamp),
    }
}

fn member_receipt(receipt: &MemberReceipt) -> pb::MemberReceipt {
    pb::MemberReceipt {
        user_id: receipt.user_id.to_string(),
        last_read_seq: receipt.last_read_seq,
        read_at: receipt.read_at.map(timestamp),
        delivered_up_to_seq: receipt.delivered_up_to_seq,
        delivered_at: receipt.delivered_at.map(timestamp),
    }
}
