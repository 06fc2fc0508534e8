//! The web chat's files on the public port (`public.web_app`, docs/web.md): served in
//! development, 404 in production unless enabled, and off when disabled; the embedded bundle
//! is the committed `web/dist`. Production here is the real backends (any non-embedded
//! backend is production mode), so each backend covers one mode.

use echo_testkit::{Backend, TestMesh};

/// Status, content type and body of `GET path` over HTTP/1.1, as a browser asks.
async fn get(mesh: &TestMesh, path: &str) -> (u16, String, String) {
    let response = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client")
        .get(format!("http://{}{path}", mesh.addr()))
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.expect("body"))
}

async fn assert_served(mesh: &TestMesh, what: &str) {
    let (status, content_type, body) = get(mesh, "/").await;
    assert_eq!(status, 200, "{what}: GET /");
    assert!(
        content_type.starts_with("text/html"),
        "{what}: {content_type}"
    );
    assert_eq!(body, include_str!("../web/dist/index.html"), "{what}");
    let (status, content_type, body) = get(mesh, "/app.js").await;
    assert_eq!(status, 200, "{what}: GET /app.js");
    assert!(content_type.starts_with("text/javascript"), "{what}");
    assert!(
        body == include_str!("../web/dist/app.js"),
        "{what}: the served app.js is not web/dist/app.js"
    );
    let (status, _, _) = get(mesh, "/app.css").await;
    assert_eq!(status, 200, "{what}: GET /app.css");
}

async fn assert_not_served(mesh: &TestMesh, what: &str) {
    for path in ["/", "/app.js", "/app.css"] {
        let (status, _, body) = get(mesh, path).await;
        assert_eq!(status, 404, "{what}: GET {path}");
        assert!(body.contains("public.web_app"), "{what}: says why: {body}");
    }
}

#[tokio::test]
async fn development_serves_the_web_chat_unless_disabled() {
    let mesh = TestMesh::start(Backend::Embedded)
        .await
        .expect("embedded always runs");
    assert!(!mesh.config.is_production());
    assert_served(&mesh, "development").await;
    // Other paths are still gRPC's: grpc-web keeps refusing a plain HTTP/1.1 request.
    let (status, _, _) = get(&mesh, "/index.js").await;
    assert_ne!(status, 200, "only the chat's own files are served");
    mesh.shutdown().await;

    let mesh = TestMesh::start_with(Backend::Embedded, "all", |config| {
        config.public.web_app = Some(false);
    })
    .await
    .expect("embedded always runs");
    assert_not_served(&mesh, "development, web_app = false").await;
    mesh.shutdown().await;
}

#[tokio::test]
async fn production_serves_the_web_chat_only_when_enabled() {
    let Some(mesh) = TestMesh::start(Backend::Real).await else {
        return;
    };
    assert!(mesh.config.is_production());
    assert_not_served(&mesh, "production").await;
    mesh.shutdown().await;

    let Some(mesh) = TestMesh::start_with(Backend::Real, "all", |config| {
        config.public.web_app = Some(true);
    })
    .await
    else {
        return;
    };
    assert_served(&mesh, "production, web_app = true").await;
    mesh.shutdown().await;
}
