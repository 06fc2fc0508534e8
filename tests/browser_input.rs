//! What a browser (or a page pretending to be one) can send the public port besides well-formed
//! grpc-web (issue 20): preflights with odd headers, origins that are not allowed, and the
//! "simple" cross-origin POST a page may send without a preflight. Each gets a clean answer —
//! never a 5xx — and nothing is served to an origin the configuration does not allow. Damaged
//! grpc-web bodies (truncated frames, grpc-web-text that is not base64, wrong content types)
//! over every RPC are in tests/fuzz_frames.rs.

use echo_testkit::{Backend, TestMesh};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};

const ALLOWED: &str = "https://app.example";
const HEALTH: &str = "/grpc.health.v1.Health/Check";

/// Request headers as sent: names and raw bytes (some are not valid text on purpose).
type Headers<'a> = Vec<(&'a str, &'a [u8])>;

async fn mesh() -> TestMesh {
    TestMesh::start_with(Backend::Embedded, "all", |config| {
        config.cors_allowed_origins = vec![ALLOWED.into()];
    })
    .await
    .expect("embedded mesh")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().http1_only().build().unwrap()
}

/// An OPTIONS request to `path` with `headers`: status and response headers.
async fn options(mesh: &TestMesh, path: &str, headers: &[(&str, &[u8])]) -> (u16, HeaderMap) {
    let mut request = http().request(Method::OPTIONS, format!("http://{}{path}", mesh.addr()));
    for (name, value) in headers {
        request = request.header(*name, HeaderValue::from_bytes(value).unwrap());
    }
    let response = request.send().await.expect("an answer");
    (response.status().as_u16(), response.headers().clone())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("<not text>"))
        .unwrap_or("")
}

/// A grpc-web call of Health/Check still answers SERVING: the port survived what came before.
async fn still_serves(mesh: &TestMesh) {
    let response = http()
        .post(format!("http://{}{HEALTH}", mesh.addr()))
        .header("origin", ALLOWED)
        .header("content-type", "application/grpc-web+proto")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(response.headers(), "access-control-allow-origin"),
        ALLOWED
    );
    let body = response.bytes().await.unwrap();
    let trailers = String::from_utf8_lossy(&body).to_lowercase();
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
}

#[tokio::test]
async fn preflights_grant_only_the_allowed_origin_methods_and_headers() {
    let mesh = mesh().await;
    let request_method: (&str, &[u8]) = ("access-control-request-method", b"POST");

    // The allowed origin asking for what grpc-web sends.
    let (status, headers) = options(
        &mesh,
        HEALTH,
        &[
            ("origin", ALLOWED.as_bytes()),
            request_method,
            (
                "access-control-request-headers",
                b"content-type,x-grpc-web,authorization",
            ),
        ],
    )
    .await;
    assert!((200..300).contains(&status), "{status}");
    assert_eq!(header(&headers, "access-control-allow-origin"), ALLOWED);

    // Origins that are not allowed, spelled every way a page or a proxy might: none is granted.
    let refused: [&[u8]; 6] = [
        b"https://evil.example",
        b"null",
        b"https://app.example.evil.example",
        b"http://app.example",
        b"https://APP.EXAMPLE:443/",
        b"https://\xff\xfe.example",
    ];
    for origin in refused {
        let (status, headers) = options(&mesh, HEALTH, &[("origin", origin), request_method]).await;
        let shown = String::from_utf8_lossy(origin);
        assert!(status < 500, "{shown}: {status}");
        assert!(
            !headers.contains_key("access-control-allow-origin"),
            "{shown} was granted: {headers:?}"
        );
    }

    // An allowed origin asking for a method and a header grpc-web never needs: neither granted.
    let (status, headers) = options(
        &mesh,
        HEALTH,
        &[
            ("origin", ALLOWED.as_bytes()),
            ("access-control-request-method", b"PUT"),
            ("access-control-request-headers", b"x-evil,cookie"),
        ],
    )
    .await;
    assert!(status < 500, "{status}");
    let methods = header(&headers, "access-control-allow-methods").to_lowercase();
    assert!(!methods.contains("put"), "{methods}");
    let allowed = header(&headers, "access-control-allow-headers").to_lowercase();
    assert!(
        !allowed.contains("x-evil") && !allowed.contains("cookie") && allowed != "*",
        "{allowed}"
    );
    still_serves(&mesh).await;
    mesh.shutdown().await;
}

#[tokio::test]
async fn odd_preflights_get_a_clean_answer_and_the_port_serves_on() {
    let mesh = mesh().await;
    let origin: (&str, &[u8]) = ("origin", ALLOWED.as_bytes());
    let long_list = vec!["x-h"; 5_000].join(",");
    let cases: Vec<(&str, &str, Headers)> = vec![
        // OPTIONS without Access-Control-Request-Method is not a preflight.
        ("no request method", HEALTH, vec![origin]),
        (
            "no origin",
            HEALTH,
            vec![("access-control-request-method", b"POST")],
        ),
        (
            "an empty request method",
            HEALTH,
            vec![origin, ("access-control-request-method", b"")],
        ),
        (
            "a request method that is not a token",
            HEALTH,
            vec![origin, ("access-control-request-method", b"PO ST\t!")],
        ),
        (
            "an unknown path",
            "/no.such.Service/Nothing",
            vec![origin, ("access-control-request-method", b"POST")],
        ),
        (
            "the root path",
            "/",
            vec![origin, ("access-control-request-method", b"POST")],
        ),
        (
            "request headers that are not a list",
            HEALTH,
            vec![
                origin,
                ("access-control-request-method", b"POST"),
                ("access-control-request-headers", b",,;;\x80\xff, ,"),
            ],
        ),
    ];
    for (what, path, headers) in cases {
        let (status, _) = options(&mesh, path, &headers).await;
        assert!(status < 500, "{what}: {status}");
    }

    // A request-headers list of 5,000 names (20 KB) is over the header limit: 431, not a crash.
    let (status, _) = options(
        &mesh,
        HEALTH,
        &[
            origin,
            ("access-control-request-method", b"POST"),
            ("access-control-request-headers", long_list.as_bytes()),
        ],
    )
    .await;
    assert_eq!(status, 431);
    still_serves(&mesh).await;
    mesh.shutdown().await;
}

/// A page on any origin may POST `text/plain` (or a form) without a preflight. Such a request
/// must not run an RPC: only grpc-web content types are served.
#[tokio::test]
async fn a_simple_cross_origin_post_runs_no_rpc() {
    let mesh = mesh().await;
    let body = vec![0u8, 0, 0, 0, 0];
    for content_type in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let response = http()
            .post(format!("http://{}{HEALTH}", mesh.addr()))
            .header("origin", "https://evil.example")
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = String::from_utf8_lossy(&response.bytes().await.unwrap()).to_lowercase();
        assert!(status < 500, "{content_type}: {status}");
        assert!(
            !headers.contains_key("access-control-allow-origin"),
            "{content_type}: granted to another origin"
        );
        // Not served: no gRPC OK in headers or a grpc-web trailer frame.
        assert_ne!(header(&headers, "grpc-status"), "0", "{content_type}");
        assert!(!text.contains("grpc-status:0"), "{content_type}: {text}");
    }
    still_serves(&mesh).await;
    mesh.shutdown().await;
}
