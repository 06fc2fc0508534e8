//! A client's journey over TLS to the whole mesh's public port (issue 16): sign up, an
//! authenticated call and a Subscribe stream, all on one TLS connection with ALPN h2. The
//! port's caps and timeouts have their own tests in `crates/runtime/tests/public_port.rs`.

use std::sync::Arc;

use echo_auth::OtpPurpose;
use echo_proto::echo::auth::v1::auth_service_client::AuthServiceClient;
use echo_proto::echo::auth::v1::{RegisterRequest, VerifyPhoneRequest};
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::message::v1::message_service_client::MessageServiceClient;
use echo_testkit::{Backend, PASSWORD, TestMesh, phone_number, test_device};
use hyper_util::rt::TokioIo;
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

#[tokio::test]
async fn a_client_signs_up_calls_and_subscribes_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let Some(mesh) = TestMesh::start_with(Backend::Embedded, "all", |config| {
        config.public.tls_cert_file = Some(dir.path().join("cert.pem"));
        config.public.tls_key_file = Some(dir.path().join("key.pem"));
    })
    .await
    else {
        return;
    };

    // A plaintext client gets nowhere: the port speaks TLS only.
    let plain = MessageServiceClient::new(mesh.channel())
        .list_conversations(pb::ListConversationsRequest::default())
        .await;
    let refused = plain.unwrap_err();
    // The TLS layer answers the HTTP/2 preface with an alert and closes: the client's
    // transport fails before any gRPC status exists.
    assert_eq!(refused.code(), tonic::Code::Unknown, "{refused:?}");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let (addr, tls) = (mesh.addr(), Arc::new(tls));
    let channel: Channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let tls = tls.clone();
            async move {
                let tcp = TcpStream::connect(addr).await?;
                let name = ServerName::try_from("localhost").unwrap();
                let stream = TlsConnector::from(tls).connect(name, tcp).await?;
                assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .expect("TLS connection");

    // Sign up: the OTP rate limits key on the client IP, from the TLS connection's address.
    let phone = phone_number();
    let mut auth = AuthServiceClient::new(channel.clone());
    auth.register(RegisterRequest {
        phone_number: phone.clone(),
        password: PASSWORD.into(),
        display_name: "Tls Client".into(),
    })
    .await
    .expect("register over TLS");
    let code = mesh.code_for(&phone, OtpPurpose::Register).await;
    let tokens = auth
        .verify_phone(VerifyPhoneRequest {
            phone_number: phone,
            code,
            device: Some(test_device()),
        })
        .await
        .expect("verify over TLS")
        .into_inner()
        .tokens
        .expect("tokens");

    let bearer: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", tokens.access_token).parse().unwrap();
    let authed = move |mut request: tonic::Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", bearer.clone());
        Ok(request)
    };
    let mut messages = MessageServiceClient::with_interceptor(channel, authed);
    let page = messages
        .list_conversations(pb::ListConversationsRequest::default())
        .await
        .expect("an authenticated call over TLS")
        .into_inner();
    assert!(page.conversations.is_empty());
    let mut live = messages
        .subscribe(pb::SubscribeRequest::default())
        .await
        .expect("Subscribe over TLS")
        .into_inner();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), live.message())
        .await
        .expect("the stream delivers")
        .expect("no error")
        .expect("an item");
    assert!(first.item.is_some(), "{first:?}");
}
