//! Private TLS servers for the backend TLS tests: a throwaway CA (rcgen) signing a certificate
//! for 127.0.0.1 and localhost, a PostgreSQL that accepts only `hostssl` connections and a
//! `redis-server` listening on a TLS port only. Each server is a child of the test process,
//! stopped and its directory removed when its guard drops, panics included. When a server's
//! binaries are missing the test skips with a loud notice (a failure under
//! `ECHO_REQUIRE_SERVICES=1`).

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{PermissionsExt as _, chown};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
/// pg_hba.conf), with trust authentication for `postgres`.
pub struct TlsPostgres {
    child: Child,
    port: u16,
    /// Data dir, socket dir and certificate files; removed after the server stops.
    dir: TempDir,
}

impl TlsPostgres {
    /// initdb a cluster in a temp dir and start it on a free port; `None` when PostgreSQL's
    /// binaries are not installed. initdb refuses root, so as root both run as `postgres`.
    pub async fn start(pki: &Pki) -> Option<Self> {
        let Some(bin) = postgres_bin_dir() else {
            return missing("PostgreSQL (initdb, postgres)");
        };
        let owner = server_owner();
        let dir = tempfile::Builder::new()
            .prefix("echo-tls-pg-")
            .tempdir()
            .expect("postgres temp dir");
        let data = dir.path().join("data");
        let (cert, key) = pki.install(dir.path());
        if let Some((uid, gid)) = owner {
            for path in [dir.path(), &cert, &key] {
                chown(path, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        let init = as_owner(Command::new(bin.join("initdb")), owner, dir.path())
            .args(["--no-sync", "-A", "trust", "-U", "postgres", "-E", "UTF8"])
            .arg("-D")
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = echo_testenv::free_port();
        let settings = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n\
             max_connections = 100\nfsync = off\nsynchronous_commit = off\n",
            dir.path().display(),
            cert.display(),
            key.display(),
        );
        append(&data.join("postgresql.conf"), &settings);
        // TLS only: a plaintext TCP connection matches no line and is refused.
        fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        let log = File::create(dir.path().join("postgres.log")).expect("postgres log");
        if let Some((uid, gid)) = owner {
            chown(dir.path().join("postgres.log"), Some(uid), Some(gid)).expect("chown log");
        }
        let child = as_owner(Command::new(bin.join("postgres")), owner, dir.path())
            .arg("-D")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let mut server = Self { child, port, dir };
        server.wait_until_ready(pki).await;
        Some(server)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres?<query>`.
    pub fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{query}",
            self.port
        )
    }

    /// The URL verifying the server against `ca` (`sslmode=verify-full`).
    pub fn verified_url(&self, ca: &Path) -> String {
        self.url(&format!("sslmode=verify-full&sslrootcert={}", ca.display()))
    }

    /// Polls until a verified TLS connection succeeds (the server answers "starting up"
    /// for a while after it listens).
    async fn wait_until_ready(&mut self, pki: &Pki) {
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
            let exited = self.child.try_wait().expect("poll postgres");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "private postgres did not start ({exited:?}): {err}\n{}",
                fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        // A fast shutdown (SIGINT) ends the backends too; SIGKILL only if it does not.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// The directory holding `initdb` and `postgres`: the newest `/usr/lib/postgresql/<v>/bin`,
/// else wherever `initdb` is on PATH.
fn postgres_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    let packaged = versions.into_iter().map(|(_, bin)| bin).next_back();
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    packaged
        .into_iter()
        .chain(on_path)
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
}

/// The uid and gid PostgreSQL runs as: `postgres`'s when this process is root (initdb and
/// postgres refuse root), none (ourselves) otherwise.
fn server_owner() -> Option<(u32, u32)> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let uid_line = status.lines().find(|l| l.starts_with("Uid:"))?;
    let effective = uid_line.split_whitespace().nth(2)?;
    if effective != "0" {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let fields: Vec<&str> = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"postgres"))
        .expect("running as root needs a `postgres` user to run PostgreSQL as");
    Some((
        fields[2].parse().expect("postgres uid"),
        fields[3].parse().expect("postgres gid"),
    ))
}

fn as_owner(mut command: Command, owner: Option<(u32, u32)>, cwd: &Path) -> Command {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command.current_dir(cwd);
    command
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .expect("append to postgresql.conf");
}
