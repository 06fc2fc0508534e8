//! The authorization matrix (issue 17, R5): every RPC of every Echo service × every kind of
//! caller, each cell's expected gRPC code in one table file, `tests/authorization_matrix.txt`,
//! the same on both backends.
//!
//! The RPCs come from the descriptors the server is built from (`echo_proto`'s file descriptor
//! set), not from a list: a new RPC without a row fails the test, and so does a row for an RPC
//! that no longer exists. Each request is made from its descriptor: every string field named
//! after a resource (`conversation_id`, `message_id`, `session_id`, `invite_id`,
//! `contact_request_id`, user ids …) holds a resource of Ada's, a message's `content` carries
//! text, keys are fresh. So the stranger's column is a stranger aiming at someone else's things.
//!
//! The columns, all through the public port unless named `internal`:
//! - `none`: no credential; `tampered`: the stranger's token with Ada's user id in its claims
//!   under the original signature; `expired`: signed by the real key, an hour old;
//!   `revoked`: a session logged out; `deleted`: a session of a deleted account;
//! - `stranger`: a signed-in user who shares nothing with Ada. Where the request names one of
//!   Ada's conversations, messages, sessions, invites or contact requests, the same call naming
//!   ids that exist nowhere must answer exactly the same (code and reason): a stranger does not
//!   learn that a resource exists;
//! - `blocked`: a user Ada has blocked (and the message service knows it), aiming at Ada's
//!   things; `removed`: a member Ada removed from the group; `member`: a plain MEMBER of the
//!   group, neither owner nor admin, calling on Ada's message, invite and membership; `admin`:
//!   Bob, whom Ada made an ADMIN; `owner`: Ada herself;
//! - `internal_none`, `internal_user`, `internal_service`: the internal listener with no
//!   credential, with a user's access token, and with a service token (internal services only:
//!   `-` elsewhere);
//! - `operator`: the public port with the operator credential (docs/admin.md), which is no
//!   user token: the admin API is not served there and nothing else takes it;
//! - `admin_none`, `admin_user`, `admin_service`, `admin_operator`: the admin port (where
//!   `echo.admin.v1.AdminService` is served) with no credential, a user's access token, a
//!   service token and the operator credential (the admin API only: `-` elsewhere). The
//!   requests carry no `reason`, so the operator's mutating calls stop at INVALID_ARGUMENT
//!   and nothing of Ada's is suspended mid-table.
//!
//! A streaming RPC's cell is the call's status, or `OK` when the stream opened (an item came,
//! or none within a second). To see the whole observed table after a change, run the test: a
//! mismatch prints it.

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::messages::wait_for_block;
use common::rpcs::{call, descriptors, targets};
use common::users::{block, known_user};
use echo_proto::echo::auth::v1 as auth_pb;
use echo_testkit::{Backend, PASSWORD, SignedIn, TestMesh};

const TABLE: &str = include_str!("authorization_matrix.txt");

const COLUMNS: [&str; 19] = [
    "none",
    "tampered",
    "expired",
    "revoked",
    "deleted",
    "stranger",
    "blocked",
    "removed",
    "member",
    "admin",
    "owner",
    "internal_none",
    "internal_user",
    "internal_service",
    "operator",
    "admin_none",
    "admin_user",
    "admin_service",
    "admin_operator",
];

/// The callers of the columns.
struct Callers {
    stranger: SignedIn,
    blocked: SignedIn,
    removed: SignedIn,
    member: SignedIn,
    tampered: String,
    expired: String,
    revoked: String,
    deleted: String,
    service: String,
}

async fn callers(mesh: &TestMesh, ada: &SignedIn, member: SignedIn, removed: SignedIn) -> Callers {
    let stranger = known_user(mesh).await;
    let blocked = known_user(mesh).await;
    block(mesh, ada, &blocked).await;
    wait_for_block(mesh, &blocked, ada).await;
    // Ada's id in the stranger's claims, the signature left as it was.
    let parts: Vec<&str> = stranger.tokens.access_token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = serde_json::Value::String(ada.tokens.user_id.clone());
    let forged = URL_SAFE_NO_PAD.encode(claims.to_string());
    let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
    let expired = common::expired_token(mesh, &stranger.tokens);
    let revoked = mesh.sign_up().await;
    mesh.auth_as(&revoked)
        .logout(auth_pb::LogoutRequest {})
        .await
        .expect("logout");
    let deleted = known_user(mesh).await;
    mesh.auth_as(&deleted)
        .delete_account(auth_pb::DeleteAccountRequest {
            password: PASSWORD.into(),
        })
        .await
        .expect("delete account");
    Callers {
        stranger,
        blocked,
        removed,
        member,
        tampered,
        expired,
        revoked: revoked.tokens.access_token,
        deleted: deleted.tokens.access_token,
        service: mesh.service_token("notification"),
    }
}

/// Every cell of one backend's matrix, and the existence leaks found on the way.
async fn observe(backend: Backend) -> Option<(BTreeMap<String, Vec<String>>, Vec<String>)> {
    let mesh = TestMesh::start(backend).await?;
    let descriptors = descriptors();
    let ada = known_user(&mesh).await;
    let bob = known_user(&mesh).await;
    let (member, removed) = (known_user(&mesh).await, known_user(&mesh).await);
    let targets = targets(&mesh, &ada, &bob, &member, &removed).await;
    let callers = callers(&mesh, &ada, member, removed).await;
    let (public, internal) = (mesh.channel(), mesh.internal_channel());
    let admin_port = mesh.admin_channel();
    let mut table = BTreeMap::new();
    let mut leaks = Vec::new();
    let mut compared = 0;
    for rpc in &descriptors.rpcs {
        let method = rpc.name.rsplit('/').next().unwrap();
        let body = || targets.encode(&descriptors, method, &rpc.input);
        let mut cells = Vec::new();
        for token in [
            None,
            Some(&callers.tampered),
            Some(&callers.expired),
            Some(&callers.revoked),
            Some(&callers.deleted),
        ] {
            let answer = call(public.clone(), token.map(String::as_str), rpc, body()).await;
            cells.push(answer.cell());
        }
        let token = Some(callers.stranger.tokens.access_token.as_str());
        let answer = call(public.clone(), token, rpc, body()).await;
        if targets.names_a_resource(&descriptors, &rpc.input) {
            compared += 1;
            let ghosts = targets.ghosts().encode(&descriptors, method, &rpc.input);
            let nowhere = call(public.clone(), token, rpc, ghosts).await;
            if nowhere != answer {
                leaks.push(format!(
                    "{backend:?} {}: Ada's resources answer {answer:?}, ids that exist nowhere \
                     {nowhere:?}",
                    rpc.name
                ));
            }
        }
        cells.push(answer.cell());
        for caller in [&callers.blocked, &callers.removed] {
            let token = Some(caller.tokens.access_token.as_str());
            cells.push(call(public.clone(), token, rpc, body()).await.cell());
        }
        for caller in [&callers.member, &bob] {
            let token = Some(caller.tokens.access_token.as_str());
            cells.push(call(public.clone(), token, rpc, body()).await.cell());
        }
        let token = Some(ada.tokens.access_token.as_str());
        let answer = call(public.clone(), token, rpc, body()).await;
        cells.push(answer.cell());
        if rpc.internal {
            for token in [
                None,
                Some(callers.stranger.tokens.access_token.as_str()),
                Some(callers.service.as_str()),
            ] {
                cells.push(call(internal.clone(), token, rpc, body()).await.cell());
            }
        } else {
            cells.extend(["-".to_owned(), "-".to_owned(), "-".to_owned()]);
        }
        let operator = Some(echo_testkit::OPERATOR_TOKEN);
        cells.push(call(public.clone(), operator, rpc, body()).await.cell());
        if rpc.name.starts_with("echo.admin.") {
            for token in [
                None,
                Some(callers.stranger.tokens.access_token.as_str()),
                Some(callers.service.as_str()),
                operator,
            ] {
                cells.push(call(admin_port.clone(), token, rpc, body()).await.cell());
            }
        } else {
            cells.extend(["-", "-", "-", "-"].map(str::to_owned));
        }
        table.insert(rpc.name.clone(), cells);
    }
    mesh.shutdown().await;
    let cells = table.values().flatten().filter(|cell| *cell != "-").count();
    eprintln!(
        "{backend:?}: {} RPCs, {cells} cells called, {compared} existence comparisons",
        table.len()
    );
    Some((table, leaks))
}

fn expected() -> BTreeMap<String, Vec<String>> {
    let mut rows = BTreeMap::new();
    for line in TABLE.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let name = words.next().unwrap().to_owned();
        let cells: Vec<String> = words.map(str::to_owned).collect();
        assert_eq!(cells.len(), COLUMNS.len(), "{name}: one cell per column");
        assert!(rows.insert(name.clone(), cells).is_none(), "{name} twice");
    }
    rows
}

fn render(table: &BTreeMap<String, Vec<String>>) -> String {
    let width = table.keys().map(String::len).max().unwrap_or(0);
    let mut out = format!("# {:width$}", "rpc", width = width.saturating_sub(2));
    for column in COLUMNS {
        out.push_str(&format!(" {column:>17}"));
    }
    out.push('\n');
    for (name, cells) in table {
        out.push_str(&format!("{name:width$}"));
        for cell in cells {
            out.push_str(&format!(" {cell:>17}"));
        }
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn every_rpc_answers_every_kind_of_caller_as_the_table_says_on_both_backends() {
    let expected = expected();
    for backend in Backend::BOTH {
        let Some((observed, leaks)) = observe(backend).await else {
            continue;
        };
        assert!(
            observed.len() >= 84,
            "the descriptors hold every RPC: {}",
            observed.len()
        );
        let mut wrong = Vec::new();
        for (name, cells) in &observed {
            match expected.get(name) {
                None => wrong.push(format!("{name}: no row in the table")),
                Some(want) => {
                    for ((column, got), want) in COLUMNS.iter().zip(cells).zip(want) {
                        if got != want {
                            wrong.push(format!("{name} {column}: {got}, the table says {want}"));
                        }
                    }
                }
            }
        }
        for name in expected.keys() {
            if !observed.contains_key(name) {
                wrong.push(format!("{name}: in the table, not in the descriptors"));
            }
        }
        assert!(
            wrong.is_empty() && leaks.is_empty(),
            "{backend:?}:\n{}\n{}\nobserved:\n{}",
            wrong.join("\n"),
            leaks.join("\n"),
            render(&observed)
        );
    }
}
