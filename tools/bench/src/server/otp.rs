//! An OTP "SMS gateway" for the bench: Echo's webhook sender posts each code here
//! (`{"phone_number", "purpose", "code"}`), and sign-ups read them back, as a person reads an
//! SMS. Used for child processes and `--target`s; the in-process mesh captures codes itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;
use tokio::task::JoinHandle;

/// Codes received, by phone number (the latest wins).
type Received = Arc<Mutex<HashMap<String, String>>>;

/// A listening webhook; stops when dropped.
pub struct Webhook {
    addr: SocketAddr,
    received: Received,
    task: Option<JoinHandle<()>>,
}

#[derive(Deserialize)]
struct Posted {
    phone_number: String,
    code: String,
}

impl Webhook {
    /// Listen on `addr` (port 0: any free port).
    pub async fn start(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind the OTP webhook on {addr}"))?;
        let addr = listener.local_addr()?;
        let received = Received::default();
        let router = Router::new()
            .route("/otp", post(receive))
            .with_state(received.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                eprintln!("otp webhook stopped: {error}");
            }
        });
        Ok(Self {
            addr,
            received,
            task: Some(task),
        })
    }

    /// The URL to configure as `auth.otp_sender`.
    pub fn url(&self) -> String {
        format!("http://{}/otp", self.addr)
    }

    /// The last code sent to `phone`.
    pub fn code(&self, phone: &str) -> Option<String> {
        self.received
            .lock()
            .ok()
            .and_then(|codes| codes.get(phone).cloned())
    }

    /// Stop listening, and return once the port is free again (a fixed `--otp-webhook`
    /// port is bound anew by the next scenario).
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn receive(State(received): State<Received>, body: String) -> StatusCode {
    let Ok(posted) = serde_json::from_str::<Posted>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    match received.lock() {
        Ok(mut codes) => {
            codes.insert(posted.phone_number, posted.code);
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
