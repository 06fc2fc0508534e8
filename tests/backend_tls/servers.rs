//! Private TLS servers for the backend TLS tests: a throwaway CA (rcgen) signing a certificate
//! for 127.0.0.1 and localhost, a PostgreSQL that accepts only `hostssl` connections and a
//! `redis-server` listening on a TLS port only. Each server is a child of the test process,
//! stopped and its directory removed when its guard drops, panics included. When a server's
//! binaries are missing the test skips with a loud notice (a failure under
//! `ECHO_REQUIRE_SERVICES=1`).

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use echo_testenv::PrivatePostgres;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use sqlx::Connection as _;
use tempfile::TempDir;

/// How long a private server may take to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A CA, a server certificate it signed for 127.0.0.1 and localhost, and an unrelated CA,
/// as PEM files in a temp dir.
pub struct Pki {
    dir: TempDir,
    /// The CA that signed the servers' certificate.
    pub ca: PathBuf,
    /// A CA that signed nothing the servers present.
    pub other_ca: PathBuf,
    cert_pem: String,
    key_pem: String,
}

impl Pki {
    /// Generate one.
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("echo-tls-pki-")
            .tempdir()
            .expect("pki dir");
        let (ca_pem, issuer) = certificate_authority("echo test CA");
        let (other_pem, _) = certificate_authority("echo unrelated CA");
        let key = KeyPair::generate().expect("server key");
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params");
        leaf.distinguished_name
            .push(DnType::CommonName, "echo test backend");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &issuer).expect("server certificate");
        let ca = dir.path().join("ca.pem");
        let other_ca = dir.path().join("other-ca.pem");
        fs::write(&ca, ca_pem).expect("write ca");
        fs::write(&other_ca, other_pem).expect("write other ca");
        Self {
            dir,
            ca,
            other_ca,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes the server certificate and key into `dir` (the key 0600), returning their paths.
    fn install(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let cert = dir.join("server.crt");
        let key = dir.join("server.key");
        fs::write(&cert, &self.cert_pem).expect("write server cert");
        fs::write(&key, &self.key_pem).expect("write server key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod key");
        (cert, key)
    }

    /// A file in the PKI's dir (for tests that need a bad CA file).
    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, contents).expect("write file");
        path
    }
}

fn certificate_authority(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("ca key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let pem = params.self_signed(&key).expect("ca certificate").pem();
    (pem, Issuer::new(params, key))
}

/// `None` after a loud notice that `what` is missing, or a panic under
/// `ECHO_REQUIRE_SERVICES=1`.
fn missing<T>(what: &str) -> Option<T> {
    let message = format!("{what} is not installed");
    if echo_testenv::services_required() {
        panic!("{message}; ECHO_REQUIRE_SERVICES=1 makes this a failure");
    }
    eprintln!("\n!!! SKIPPING: {message}\n");
    None
}

/// A PostgreSQL child of this test that accepts TLS connections only (`hostssl` alone in
/// pg_hba.conf), with trust authentication for `postgres` (an
/// [`echo_testenv::PrivatePostgres`] with TLS settings).
pub struct TlsPostgres {
    server: PrivatePostgres,
    /// Data dir, socket dir and certificate files; removed after the server stops (declared
    /// after `server`, so dropped after it).
    _dir: TempDir,
}

impl TlsPostgres {
    /// initdb a cluster in a temp dir and start it on a free port; `None` when PostgreSQL's
    /// binaries are not installed.
    pub async fn start(pki: &Pki) -> Option<Self> {
        let dir = tempfile::Builder::new()
            .prefix("echo-tls-pg-")
            .tempdir()
            .expect("postgres temp dir");
        let (cert, key) = pki.install(dir.path());
        let settings = format!(
            "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\n\
             synchronous_commit = off\n",
            cert.display(),
            key.display(),
        );
        // TLS only: a plaintext TCP connection matches no line and is refused.
        let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n";
        let port = echo_testenv::free_port();
        let mut server = PrivatePostgres::init(dir.path(), port, &settings, hba)?;
        server.give(&cert);
        server.give(&key);
        server.start();
        let server = Self { server, _dir: dir };
        server.wait_until_verified(pki).await;
        Some(server)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres?<query>`.
    pub fn url(&self, query: &str) -> String {
        self.server.url(query)
    }

    /// The URL verifying the server against `ca` (`sslmode=verify-full`).
    pub fn verified_url(&self, ca: &Path) -> String {
        self.url(&format!("sslmode=verify-full&sslrootcert={}", ca.display()))
    }

    /// Polls until a verified TLS connection succeeds: the server accepts connections once
    /// `start` returns, so this fails fast on a certificate the client does not accept.
    async fn wait_until_verified(&self, pki: &Pki) {
        let url = self.verified_url(&pki.ca);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let err = match sqlx::PgConnection::connect(&url).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    return;
                }
                Err(err) => err,
            };
            assert!(
                Instant::now() < deadline,
                "private postgres refused TLS: {err}\n{}",
                self.server.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A `redis-server` child of this test listening on a TLS port only (no plaintext port, no
/// client certificates asked).
pub struct TlsRedis {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl TlsRedis {
    /// Start one on a free port; `None` when `redis-server` is not installed.
    pub fn start(pki: &Pki) -> Option<Self> {
        let dir = tempfile::Builder::new()
            .prefix("echo-tls-redis-")
            .tempdir()
            .expect("redis temp dir");
        let (cert, key) = pki.install(dir.path());
        let port = echo_testenv::free_port();
        let log = File::create(dir.path().join("redis.log")).expect("redis log");
        let spawned = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--tls-ca-cert-file")
            .arg(&pki.ca)
            .args(["--tls-auth-clients", "no", "--dir"])
            .arg(dir.path())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return missing("redis-server");
            }
            Err(err) => panic!("cannot start redis-server: {err}"),
        };
        let mut server = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + START_DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            // A redis-server built without TLS exits at once on `--tls-port`.
            let exited = server.child.try_wait().expect("poll redis-server");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "private TLS redis-server did not start (built without TLS?): {}",
                fs::read_to_string(server._dir.path().join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    /// `rediss://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
