//! Structure-aware fuzzing of every RPC through the real server (issue 17, R4), on both
//! backends.
//!
//! For each RPC of every Echo service (read from the descriptor set, like the authorization
//! matrix), requests are generated from its input descriptor: each field present or not, with
//! values chosen to hurt — empty, 70,000-character and control-character strings, Ada's real
//! ids and ids of nothing, integers at their limits, unknown enum numbers, repeated fields of
//! 0 to 10,000 elements, nested messages — and then some are damaged as bytes: truncated, a
//! byte flipped, unknown fields, a known field with the wrong wire type, invalid UTF-8 in a
//! string, 200 levels of nesting. Each is sent as Ada (the owner of the group the ids name)
//! through the public port.
//!
//! Every answer must be a considered one: never INTERNAL, UNKNOWN or a transport failure, no
//! call may hang (10 s), every INVALID_ARGUMENT names its field violations, and the server
//! still answers afterwards. A failure prints the RPC, the seed and the request's bytes as hex:
//! add them to [`REGRESSIONS`], which run first on every run.
//!
//! `FUZZ_SEED` (default 1) and `FUZZ_CASES` (requests per RPC, default 24; CI's size) choose
//! the run; `just fuzz` runs a long one.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::rpcs::{Descriptors, Rpc, Targets, assert_survived, descriptors, status, targets};
use common::users::known_user;
use echo_testkit::{Backend, TestMesh};
use prost::encoding::{self, WireType};
use prost_types::field_descriptor_proto::{Label, Type};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::{Code, Status};

/// Inputs that once failed: (RPC, request bytes as hex). Run first, every run.
const REGRESSIONS: &[(&str, &str)] = &[
    // SetStatus AWAY with clear_after {seconds: i64::MIN, nanos: -1}: prost-types negated the
    // seconds converting it, an overflow that panicked the handler in debug builds (the
    // client saw the stream reset, CANCELLED).
    (
        "echo.presence.v1.PresenceService/SetStatus",
        "08031216088080808080808080800110ffffffffffffffffff01",
    ),
];

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

/// One generated request.
struct Fuzzer<'a> {
    rng: StdRng,
    descriptors: &'a Descriptors,
    targets: &'a Targets,
}

impl Fuzzer<'_> {
    /// A string; 70,000 characters only outside repeated fields (10,000 of those would make a
    /// request of hundreds of megabytes, refused by size before anything else).
    fn string(&mut self, repeated: bool) -> String {
        let ghost = uuid::Uuid::from_u128(self.rng.random()).to_string();
        let pick = self.rng.random_range(0..16);
        let pick = if repeated && pick == 6 { 5 } else { pick };
        match pick {
            0 => String::new(),
            1 => self.targets.conversation.clone(),
            2 => self.targets.message.clone(),
            3 => self.targets.user.clone(),
            4 => ghost,
            5 => "x".repeat(self.rng.random_range(250..260)),
            6 => "é".repeat(70_000),
            7 => "a\u{0}b\u{1b}[2J\u{7}".into(),
            8 => "🙂‍↔️ zalgo z̷̢̛a̶l̵g̸o".into(),
            9 => "+14155550000".into(),
            10 => "' OR 1=1; DROP TABLE messages; --".into(),
            11 => "%s%n%x{}{{}}".into(),
            12 => "  padded  ".into(),
            13 => ghost.to_uppercase().replace('-', ""),
            14 => "AAAAAAAAAAAAAAAAAAAAAA".into(),
            _ => "-1".into(),
        }
    }

    fn integer(&mut self) -> i64 {
        const EDGES: [i64; 10] = [
            0,
            1,
            -1,
            200,
            201,
            1_000_000,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ];
        EDGES[self.rng.random_range(0..EDGES.len())]
    }

    /// How many elements a repeated field gets: now and then thousands, but only near the
    /// top (thousands of messages of thousands of elements would be gigabytes to generate).
    fn repeats(&mut self, messages: bool, depth: usize) -> usize {
        match self.rng.random_range(0..20) {
            0 if depth == 0 && !messages => 10_000,
            0 | 1 if depth == 0 => 300,
            2 if depth <= 1 => 60,
            n => n % 4,
        }
    }

    /// A message of type `message`, `depth` levels down.
    fn message(&mut self, message: &str, depth: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        let Some(descriptor) = self.descriptors.messages.get(message) else {
            return buf;
        };
        for field in descriptor.field.clone() {
            if self.rng.random_bool(0.3) {
                continue;
            }
            let number = u32::try_from(field.number()).expect("field number");
            let count = if field.label() == Label::Repeated {
                self.repeats(field.r#type() == Type::Message, depth)
            } else {
                1
            };
            let repeated = count != 1;
            for _ in 0..count {
                let (kind, name) = (field.r#type(), field.type_name());
                self.value(&mut buf, number, kind, name, repeated, depth);
            }
        }
        buf
    }

    fn value(
        &mut self,
        buf: &mut Vec<u8>,
        number: u32,
        kind: Type,
        name: &str,
        repeated: bool,
        depth: usize,
    ) {
        match kind {
            Type::String => encoding::string::encode(number, &self.string(repeated), buf),
            Type::Bytes => {
                let bytes: Vec<u8> = (0..self.rng.random_range(0..64))
                    .map(|_| self.rng.random())
                    .collect();
                encoding::bytes::encode(number, &bytes, buf);
            }
            Type::Message if depth < 4 => {
                let inner = self.message(name, depth + 1);
                encoding::bytes::encode(number, &inner, buf);
            }
            Type::Message | Type::Group => {}
            Type::Enum => {
                const VALUES: [i32; 6] = [0, 1, 2, 3, 99, -1];
                let value = VALUES[self.rng.random_range(0..VALUES.len())];
                encoding::int32::encode(number, &value, buf);
            }
            Type::Bool => encoding::bool::encode(number, &self.rng.random(), buf),
            Type::Int32 | Type::Uint32 | Type::Int64 | Type::Uint64 => {
                encoding::int64::encode(number, &self.integer(), buf);
            }
            Type::Sint32 | Type::Sint64 => encoding::sint64::encode(number, &self.integer(), buf),
            Type::Fixed32 | Type::Sfixed32 | Type::Float => {
                encoding::fixed32::encode(number, &self.rng.random(), buf);
            }
            Type::Fixed64 | Type::Sfixed64 | Type::Double => {
                encoding::fixed64::encode(number, &self.rng.random(), buf);
            }
        }
    }

    /// `body` damaged as bytes, or as it was.
    fn damage(&mut self, mut body: Vec<u8>, input: &str) -> Vec<u8> {
        let strings: Vec<u32> = self.descriptors.messages[input]
            .field
            .iter()
            .filter(|f| f.r#type() == Type::String)
            .map(|f| u32::try_from(f.number()).unwrap())
            .collect();
        match self.rng.random_range(0..18) {
            0 if !body.is_empty() => body.truncate(self.rng.random_range(0..body.len())),
            1 if !body.is_empty() => {
                let at = self.rng.random_range(0..body.len());
                body[at] ^= 1 << self.rng.random_range(0..8);
            }
            2 => {
                encoding::encode_key(
                    1000 + self.rng.random_range(0..100),
                    WireType::Varint,
                    &mut body,
                );
                encoding::encode_varint(self.rng.random(), &mut body);
                encoding::bytes::encode(5000, &vec![7u8; 100], &mut body);
            }
            3 => {
                // Field 1 with every wrong wire type in turn.
                encoding::encode_key(1, WireType::ThirtyTwoBit, &mut body);
                body.extend_from_slice(&[1, 2, 3, 4]);
                encoding::encode_key(1, WireType::SixtyFourBit, &mut body);
                body.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
            }
            4 if !strings.is_empty() => {
                let number = strings[self.rng.random_range(0..strings.len())];
                encoding::bytes::encode(number, &vec![b'a', 0xff, 0xfe, b'z'], &mut body);
            }
            5 => {
                // 200 levels of groups, then 200 of length-delimited nesting, in unknown fields.
                for _ in 0..200 {
                    encoding::encode_key(999, WireType::StartGroup, &mut body);
                }
                for _ in 0..200 {
                    encoding::encode_key(999, WireType::EndGroup, &mut body);
                }
                let mut nested = Vec::new();
                for _ in 0..200 {
                    let mut outer = Vec::new();
                    encoding::bytes::encode(1, &nested, &mut outer);
                    nested = outer;
                }
                encoding::bytes::encode(998, &nested, &mut body);
            }
            6 => {
                // A length that runs past the end.
                encoding::encode_key(1, WireType::LengthDelimited, &mut body);
                encoding::encode_varint(1 << 20, &mut body);
                body.extend_from_slice(b"short");
            }
            _ => {}
        }
        body
    }
}

/// Why `answer` is not a considered answer, if it is not.
fn fault(answer: &Option<Status>) -> Option<String> {
    let status = answer.as_ref()?;
    let reason = common::reason(status);
    match status.code() {
        Code::Internal | Code::Unknown | Code::DataLoss | Code::Cancelled => {
            Some(format!("{:?}", status.code()))
        }
        Code::DeadlineExceeded => Some("no answer within 10 s".into()),
        Code::Unavailable if reason.is_empty() => Some("a transport failure".into()),
        Code::InvalidArgument if common::violated_fields(status).is_empty() => {
            Some("INVALID_ARGUMENT without field violations".into())
        }
        _ => None,
    }
}

#[tokio::test]
async fn no_generated_or_damaged_request_gets_an_unconsidered_answer_on_both_backends() {
    let (seed, cases) = (env("FUZZ_SEED", 1), env("FUZZ_CASES", 24));
    let descriptors = descriptors();
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let others = [
            known_user(&mesh).await,
            known_user(&mesh).await,
            known_user(&mesh).await,
        ];
        let targets = targets(&mesh, &ada, &others[0], &others[1], &others[2]).await;
        let token = Some(ada.tokens.access_token.as_str());
        let wait = Duration::from_millis(100);
        let by_name: BTreeMap<&str, &Rpc> = descriptors
            .rpcs
            .iter()
            .map(|rpc| (rpc.name.as_str(), rpc))
            .collect();
        let mut faults = Vec::new();
        for (name, hex) in REGRESSIONS {
            let body = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            let answer = status(mesh.channel(), token, by_name[name], body, wait).await;
            if let Some(why) = fault(&answer) {
                faults.push(format!("regression {name} {hex}: {why}: {answer:?}"));
            }
        }
        let mut fuzzer = Fuzzer {
            rng: StdRng::seed_from_u64(seed),
            descriptors: &descriptors,
            targets: &targets,
        };
        let mut codes: BTreeMap<String, usize> = BTreeMap::new();
        for rpc in &descriptors.rpcs {
            for case in 0..cases {
                let body = fuzzer.message(&rpc.input, 0);
                let body = fuzzer.damage(body, &rpc.input);
                let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
                let answer = status(mesh.channel(), token, rpc, body, wait).await;
                let code = answer.as_ref().map_or(Code::Ok, Status::code);
                *codes.entry(format!("{code:?}")).or_default() += 1;
                if let Some(why) = fault(&answer) {
                    faults.push(format!(
                        "{backend:?} {} (FUZZ_SEED={seed}, case {case}): {why}: {answer:?}\n  \
                         request: {hex:.2000}",
                        rpc.name
                    ));
                }
            }
        }
        eprintln!(
            "{backend:?}: {} requests over {} RPCs (FUZZ_SEED={seed}), answers {codes:?}",
            descriptors.rpcs.len() as u64 * cases,
            descriptors.rpcs.len()
        );
        // Still serving, and Ada still signed in unless a generated Logout ended her session.
        assert_survived(&mesh, &others[0], backend, &faults).await;
        mesh.shutdown().await;
    }
}
