//! Fuzzing below the protobuf layer (issue 17, R4): every RPC of every Echo service (read from
//! the descriptor set, like tests/fuzz_requests.rs) gets a valid request whose gRPC framing is
//! damaged — a length prefix longer or shorter than the message, a truncated frame, a header
//! alone, an empty body, the compressed flag without or with an unknown `grpc-encoding`, flag
//! values 2..255, a client trailer frame (0x80), two messages to a method that takes one, a
//! wrong or missing content type, grpc-web-text that is not base64, a 4 GiB - 1 length — sent
//! through the real public port over HTTP/2 gRPC, HTTP/1.1 grpc-web and grpc-web-text, as Ada,
//! the owner of the group the request names. On both backends.
//!
//! Every answer must be a gRPC status a client can act on, with its request id: never
//! INTERNAL, UNKNOWN, DATA_LOSS or CANCELLED, never a transport failure, no call without an
//! answer in 10 s; damage that leaves no valid message is INVALID_ARGUMENT (with a field
//! violation), an unsupported encoding UNIMPLEMENTED, the 4 GiB length RESOURCE_EXHAUSTED —
//! unless the call is refused before its body is read (an internal contract on the public
//! port, a session a Logout ended, a rate limit). Over HTTP/1.1 a request that is not
//! grpc-web at all may be refused with a plain HTTP 4xx. The server answers afterwards.
//!
//! Then HTTP/2 abused on connections of its own (`raw_h2`, embedded backend only: the
//! framing layer is the same whatever the storage): each abuse closes at most its own
//! connection, a bystander connection keeps working, and the server answers a normal call.
//!
//! `FRAMES_SEED` (default 1) and `FRAMES_ROUNDS` (each round sends every damage to every RPC
//! once; default 1, CI's size) choose the run; `just fuzz-frames` runs a long one. Each damage
//! goes over the three transports in turn from RPC to RPC, so every pairing is sent.

mod common;

#[path = "fuzz_frames/cases.rs"]
mod cases;
#[path = "fuzz_frames/raw_h2.rs"]
mod raw_h2;

use std::collections::BTreeMap;
use std::time::Instant;

use cases::{Damage, TRANSPORTS, Transport, fault, send};
use common::frames::Answer;
use common::rpcs::{assert_survived, descriptors, targets};
use common::users::known_user;
use echo_testkit::{Backend, TestMesh};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tonic::Code;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

#[tokio::test]
async fn damaged_framing_of_every_rpc_gets_a_considered_answer_on_both_backends() {
    let (seed, rounds) = (env("FRAMES_SEED", 1), env("FRAMES_ROUNDS", 1));
    let descriptors = descriptors();
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let started = Instant::now();
        let ada = known_user(&mesh).await;
        let others = [
            known_user(&mesh).await,
            known_user(&mesh).await,
            known_user(&mesh).await,
        ];
        let targets = targets(&mesh, &ada, &others[0], &others[1], &others[2]).await;
        // RevokeSession (of Ada's session, the one the targets name) and Logout end the
        // session: Ada gets another so the rows after still reach the framing.
        let mut token = ada.tokens.access_token.clone();
        let mut sign_ins = 0;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut faults = Vec::new();
        let mut answers: BTreeMap<String, usize> = BTreeMap::new();
        let mut sent = 0usize;
        for round in 0..rounds {
            for (index, rpc) in descriptors.rpcs.iter().enumerate() {
                let method = rpc.name.rsplit('/').next().expect("a method");
                let message = targets.encode(&descriptors, method, &rpc.input);
                let path = format!("/{}", rpc.name);
                let damages = Damage::all(&mut rng, message.len());
                for (d, damage) in damages.iter().enumerate() {
                    let turn = (index + d + round as usize) % TRANSPORTS.len();
                    let transport = if damage.text_only() {
                        Transport::WebText
                    } else {
                        TRANSPORTS[turn]
                    };
                    let answer = send(
                        mesh.addr(),
                        mesh.channel(),
                        transport,
                        (&path, rpc.streaming),
                        &token,
                        &message,
                        damage,
                    )
                    .await;
                    sent += 1;
                    let label = match answer.as_ref().map(|a| (a.code(), a.http)) {
                        Some((Some(code), _)) => format!("{code:?}"),
                        Some((None, 200)) => "stream open".into(),
                        Some((None, http)) => format!("HTTP {http}"),
                        None => "no answer".into(),
                    };
                    *answers.entry(label).or_default() += 1;
                    if answer.as_ref().and_then(Answer::code) == Some(Code::Unauthenticated) {
                        // A token of a new session of Ada's, signed with the mesh's key (signing
                        // in again would soon meet the sign-in rate limit in a long run).
                        token = mesh.mint_token(ada.tokens.user_id.parse().expect("uuid"));
                        sign_ins += 1;
                    }
                    let expect = damage.expect(transport);
                    if let Some(why) = fault(answer.as_ref(), expect, rpc.streaming) {
                        faults.push(format!(
                            "{backend:?} {} {transport:?} {damage:?} (FRAMES_SEED={seed}, \
                             round {round}): {why}: {answer:?}",
                            rpc.name
                        ));
                    }
                }
            }
        }
        eprintln!(
            "{backend:?}: {sent} damaged requests over {} RPCs in {:.1?} (FRAMES_SEED={seed}, \
             {rounds} rounds), answers {answers:?}, Ada's session ended {sign_ins} times",
            descriptors.rpcs.len(),
            started.elapsed()
        );
        assert_survived(&mesh, &others[0], backend, &faults).await;
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn http2_abuse_closes_at_most_its_own_connection() {
    let mesh = TestMesh::start(Backend::Embedded).await.unwrap();
    let user = known_user(&mesh).await;
    let report = raw_h2::abuse_all(&mesh, &user).await;
    eprintln!("{report}");
    mesh.shutdown().await;
}
