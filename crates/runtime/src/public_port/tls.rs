//! TLS on the public port: rustls on ring, ALPN `h2` (gRPC) and `http/1.1` (grpc-web), and a
//! certificate re-read from its files every few seconds, so a renewed certificate (cert-manager,
//! certbot) is served to new handshakes without a restart. A pair that fails to load keeps the
//! previous certificate and logs why (never the key).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How often the files are re-read. Comparing their bytes (two small reads) catches every
/// change, including ones within a file system's mtime granularity.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// An acceptor serving the pair in `cert` and `key`, re-read until `shutdown`.
pub(super) fn acceptor(
    cert: PathBuf,
    key: PathBuf,
    shutdown: CancellationToken,
) -> std::io::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let files = read(&cert, &key)?;
    let certified = load(&files, &provider).map_err(|problem| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "public.tls_cert_file {} / public.tls_key_file {}: {problem}",
                cert.display(),
                key.display()
            ),
        )
    })?;
    let resolver = Arc::new(ReloadingCert {
        current: RwLock::new(Arc::new(certified)),
        seen: Mutex::new(files),
        cert,
        key,
        provider: provider.clone(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RELOAD_EVERY) => resolver.reload(),
            }
        }
    });
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The certificate every handshake gets: the last pair that loaded.
struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' bytes as last read, loaded or not (a bad pair is reported once).
    seen: Mutex<(Vec<u8>, Vec<u8>)>,
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

impl ReloadingCert {
    /// Load the pair if either file changed since last seen; keep the old one if it fails.
    fn reload(&self) {
        let files = match read(&self.cert, &self.key) {
            Ok(files) => files,
            Err(error) => {
                tracing::warn!(%error, "cannot read the tls certificate or key; keeping the previous certificate");
                return;
            }
        };
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == files {
                return;
            }
            seen.clone_from(&files);
        }
        match load(&files, &self.provider) {
            Ok(certified) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certified);
                tracing::info!(cert = %self.cert.display(), "tls certificate reloaded");
            }
            Err(problem) => tracing::warn!(
                cert = %self.cert.display(),
                key = %self.key.display(),
                %problem,
                "the new tls certificate or key does not load; keeping the previous certificate"
            ),
        }
    }
}

fn read(cert: &Path, key: &Path) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    Ok((read_file(cert)?, read_file(key)?))
}

/// The file's bytes; an error names the file.
fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|error| std::io::Error::new(error.kind(), format!("{}: {error}", path.display())))
}

/// A certified key from PEM bytes, checked to match. Errors name what is wrong, never the
/// key's contents.
fn load(
    (cert, key): &(Vec<u8>, Vec<u8>),
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("the certificate file is not PEM: {error}"))?;
    if chain.is_empty() {
        return Err("the certificate file holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|error| format!("the key file holds no PEM private key: {error}"))?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|error| format!("the key does not fit the certificate: {error}"))
}
