//! A mesh's notification service pointed at a [`FakePushServer`]: every platform configured
//! from credential files written the way an operator mounts them.

use std::path::Path;

use echo_config::Config;
use echo_push::fake::FakePushServer;
use secrecy::ExposeSecret as _;

/// Writes the fake's credentials (FCM service account, APNs key, VAPID key, webhook secret,
/// its CA) into `dir` and points `config.notification` at them and at the fake's URLs.
pub fn configure(config: &mut Config, fake: &FakePushServer, dir: &Path) {
    let write = |name: &str, contents: &str| {
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write a credential file");
        path
    };
    let fcm = fake.fcm_config();
    let account = serde_json::json!({
        "type": "service_account",
        "project_id": fcm.project_id,
        "private_key_id": fcm.private_key_id,
        "private_key": fcm.private_key_pem.expose_secret(),
        "client_email": fcm.client_email,
        "token_uri": fcm.token_uri,
    });
    let apns = fake.apns_config();
    let webpush = fake.webpush_config();
    let n = &mut config.notification;
    n.extra_ca_file = Some(write("push-ca.pem", fake.ca_pem()));
    n.fcm_service_account_file = Some(write("fcm.json", &account.to_string()));
    n.fcm_base_url = Some(fcm.base_url.clone());
    n.apns_key_file = Some(write("apns.p8", apns.private_key_pem.expose_secret()));
    n.apns_key_id = apns.key_id.clone();
    n.apns_team_id = apns.team_id.clone();
    n.apns_topic = apns.topic.clone();
    n.apns_production_url = Some(apns.production_url.clone());
    n.apns_sandbox_url = Some(apns.sandbox_url.clone());
    n.webpush_vapid_key_file = Some(write(
        "vapid.key",
        webpush.vapid_private_key.expose_secret(),
    ));
    n.webpush_subject = webpush.subject.clone();
    n.webhook_secret_file = Some(write(
        "webhook.secret",
        fake.webhook_config().secret.expose_secret(),
    ));
}
