//! TLS termination (rustls via tokio-rustls) with a built-in CA.
//!
//! [`TlsServer::prepare`] turns the configured [`TlsMode`] into a ready
//! acceptor: certificate files given by the operator, or `certs/` made on
//! first start by the built-in CA. The certificate is served through a
//! reloadable resolver, so new files (or SIGHUP) take effect without
//! dropping connections; a broken new file keeps the old certificate.

pub mod certs;
pub mod names;
pub mod trust;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use certs::{CertInfo, Fingerprint};
pub use names::SubjectNames;

/// How `serve` does TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain HTTP (`--no-tls`).
    Disabled,
    /// Use `dir/server.crt` and `dir/server.key` as they are if present;
    /// otherwise generate a CA and a server certificate there for `extra`
    /// (`tls.hosts`, the listen address) and this machine's names.
    Auto { dir: PathBuf, extra: SubjectNames },
    /// The operator's own files (e.g. Let's Encrypt or a company CA).
    Files {
        cert: PathBuf,
        key: PathBuf,
        ca: Option<PathBuf>,
    },
}

/// Warn when the certificate expires sooner than this.
const EXPIRY_WARNING: time::Duration = time::Duration::days(30);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificates { path: PathBuf },
    #[error("{path} holds no usable private key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the private key {key} does not belong to the certificate {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("the certificate {path} expired on {not_after}")]
    Expired {
        path: PathBuf,
        not_after: OffsetDateTime,
    },
    #[error("the certificate {path} cannot be parsed: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{dir}/ca.crt exists but {dir}/ca.key does not, so no certificate can be signed", dir = dir.display())]
    CaKeyMissing { dir: PathBuf },
    #[error("no host name or IP address to put in the certificate")]
    NoNames,
    #[error("{0:?} is not a valid DNS name for a certificate")]
    BadName(String),
    #[error("generating a certificate failed: {0}")]
    Generate(String),
}

impl TlsError {
    /// What the operator can do about it.
    pub fn hint(&self) -> String {
        match self {
            TlsError::Read { .. } | TlsError::NoCertificates { .. } => {
                "check tls.cert / tls.key in proxy.yaml, or remove them to let regproxy make its own certificates".into()
            }
            TlsError::Write { .. } => "make the certificate directory writable, or choose another with --out / tls.dir".into(),
            TlsError::BadKey { .. } | TlsError::KeyMismatch { .. } => {
                "give the key that was issued with this certificate (PEM: PKCS#8, RSA or EC)".into()
            }
            TlsError::Expired { .. } | TlsError::BadCertificate { .. } => {
                "renew the certificate, or issue a new one with: regproxy gen-cert --host NAME".into()
            }
            TlsError::CaKeyMissing { dir } => format!(
                "restore {}/ca.key, or make a new CA with --force (clients must then trust the new ca.crt)",
                dir.display()
            ),
            TlsError::NoNames => "give at least one --host NAME or --ip ADDRESS".into(),
            TlsError::BadName(_) => "use a DNS name such as registry.local, or --ip for addresses".into(),
            TlsError::Generate(_) => "this is a bug; please report it with the command you ran".into(),
        }
    }
}

/// What tells us a file changed: its modification time. (A change that
/// keeps the time, e.g. a copy with `cp -p`, needs SIGHUP.)
fn stamp(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.modified().unwrap_or(SystemTime::UNIX_EPOCH))
}

/// Loads a certificate chain and its key, checking that they match.
pub fn load_certified_key(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<CertifiedKey>, CertInfo), TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificates {
            path: cert.to_path_buf(),
        });
    };
    let info = certs::inspect(leaf).map_err(|reason| TlsError::BadCertificate {
        path: cert.to_path_buf(),
        reason,
    })?;
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| TlsError::BadKey {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let ck = CertifiedKey::from_der(chain, key_der, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        },
        other => TlsError::BadKey {
            path: key.to_path_buf(),
            reason: other.to_string(),
        },
    })?;
    Ok((Arc::new(ck), info))
}

/// Serves whatever certificate was loaded last.
#[derive(Debug)]
pub struct ReloadingResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// A TLS front ready to accept connections.
pub struct TlsServer {
    pub acceptor: tokio_rustls::TlsAcceptor,
    resolver: Arc<ReloadingResolver>,
    cert_path: PathBuf,
    key_path: PathBuf,
    /// The CA certificate clients should trust, served at `/ca.crt`.
    pub ca_pem: Option<bytes::Bytes>,
    /// Stamps of the files last tried, so a broken file is reported once.
    seen: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
    /// What this start generated, if it made the certificates.
    pub generated: Option<certs::Issued>,
    /// The certificate served at start: its names, for the printed hosts.
    pub info: CertInfo,
}

impl TlsServer {
    /// Loads or makes the certificate for `mode`; `None` for plain HTTP.
    pub fn prepare(mode: &TlsMode) -> Result<Option<Arc<TlsServer>>, TlsError> {
        let mut generated = None;
        let (cert, key, ca) = match mode {
            TlsMode::Disabled => return Ok(None),
            TlsMode::Files { cert, key, ca } => (cert.clone(), key.clone(), ca.clone()),
            TlsMode::Auto { dir, extra } => {
                let (cert, key) = (dir.join(certs::SERVER_CERT), dir.join(certs::SERVER_KEY));
                if !(cert.exists() && key.exists()) {
                    let mut names = extra.clone();
                    names.merge(&SubjectNames::of_this_machine());
                    let issued = certs::issue(dir, &names, certs::DEFAULT_SERVER_DAYS, false)?;
                    tracing::info!(
                        dir = %dir.display(),
                        names = ?issued.names.dns,
                        ips = ?issued.names.ips,
                        ca_created = issued.ca_created,
                        "generated a server certificate signed by the built-in CA"
                    );
                    tracing::info!(
                        "CA fingerprint (SHA-256) {}: clients trust {}/ca.crt",
                        issued.ca_fingerprint.colon_hex(),
                        dir.display()
                    );
                    generated = Some(issued);
                }
                (cert, key, Some(dir.join(certs::CA_CERT)))
            }
        };
        let (ck, info) = load_certified_key(&cert, &key)?;
        check_validity(&cert, &info)?;
        let ca_pem = ca
            .filter(|p| p.exists())
            .map(|p| {
                std::fs::read(&p)
                    .map(bytes::Bytes::from)
                    .map_err(|source| TlsError::Read { path: p, source })
            })
            .transpose()?;
        let resolver = Arc::new(ReloadingResolver {
            current: RwLock::new(ck),
        });
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Generate(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let seen = Mutex::new((stamp(&cert), stamp(&key)));
        Ok(Some(Arc::new(TlsServer {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            resolver,
            cert_path: cert,
            key_path: key,
            ca_pem,
            seen,
            generated,
            info,
        })))
    }

    /// The fingerprint of the CA clients trust (served at `/ca.crt`), if any.
    pub fn ca_fingerprint(&self) -> Option<Fingerprint> {
        let pem = std::str::from_utf8(self.ca_pem.as_deref()?).ok()?;
        certs::pem_to_der(pem).map(|der| Fingerprint::of_der(&der))
    }

    /// The certificate file served.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// Reloads the files if they changed (or always, with `force`). A
    /// broken new file keeps the old certificate and logs why, once.
    pub fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let now = (stamp(&self.cert_path), stamp(&self.key_path));
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *seen == now {
                return Ok(false);
            }
            *seen = now;
        }
        let (ck, info) = load_certified_key(&self.cert_path, &self.key_path)?;
        check_validity(&self.cert_path, &info)?;
        *self
            .resolver
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = ck;
        Ok(true)
    }

    /// Watches the certificate files (and SIGHUP) until the returned task
    /// is aborted.
    pub fn spawn_watcher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut trigger = crate::reload::Trigger::new();
            loop {
                let forced = trigger.next().await;
                let me2 = me.clone();
                match tokio::task::spawn_blocking(move || me2.reload(forced)).await {
                    Ok(Ok(true)) => {
                        tracing::info!(cert = %me.cert_path.display(), "reloaded the TLS certificate")
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "keeping the previous TLS certificate")
                    }
                    Err(e) => tracing::warn!(error = %e, "certificate reload task failed"),
                }
            }
        })
    }
}

/// Refuses an expired certificate; warns about one expiring soon.
fn check_validity(path: &Path, info: &CertInfo) -> Result<(), TlsError> {
    let now = OffsetDateTime::now_utc();
    if info.not_after < now {
        return Err(TlsError::Expired {
            path: path.to_path_buf(),
            not_after: info.not_after,
        });
    }
    if info.not_after - now < EXPIRY_WARNING {
        tracing::warn!(cert = %path.display(), not_after = %info.not_after, "the TLS certificate expires soon; renew it (regproxy gen-cert)");
    }
    if info.not_before > now {
        tracing::warn!(cert = %path.display(), not_before = %info.not_before, "the TLS certificate is not valid yet; check this machine's clock");
    }
    Ok(())
}

/// Logs handshake failures without letting a scanner flood the log: at
/// most `BURST` lines per window, then one summary.
pub struct HandshakeLog {
    state: Mutex<(Instant, u32, u64)>,
}

impl HandshakeLog {
    const WINDOW: Duration = Duration::from_secs(10);
    const BURST: u32 = 5;

    pub fn new() -> HandshakeLog {
        HandshakeLog {
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// Records a failure; returns whether it should be logged now, and how
    /// many were suppressed before it.
    pub fn admit(&self) -> (bool, u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0.elapsed() >= Self::WINDOW {
            let suppressed = s.2;
            *s = (Instant::now(), 1, 0);
            return (true, suppressed);
        }
        if s.1 < Self::BURST {
            s.1 += 1;
            (true, 0)
        } else {
            s.2 += 1;
            (false, 0)
        }
    }
}

impl Default for HandshakeLog {
    fn default() -> Self {
        Self::new()
    }
}

/// The answer to a plain-HTTP request sent to the TLS port.
pub fn plain_http_answer(port: u16) -> Vec<u8> {
    let body = format!(
        "This port speaks HTTPS. Use https:// (for example https://HOST:{port}/v2/).\n\
         Docker: trust the registry's CA instead of using insecure-registries; \
         download it from https://HOST:{port}/ca.crt (on the registry host, `regproxy trust --host NAME` prints the commands).\n"
    );
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_log_is_bounded() {
        let log = HandshakeLog::new();
        let admitted = (0..100).filter(|_| log.admit().0).count();
        assert_eq!(admitted, HandshakeLog::BURST as usize);
    }

    #[test]
    fn mismatched_key_is_refused_and_reload_keeps_old() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let mut n = SubjectNames::default();
        n.add_host("x.local").unwrap();
        certs::issue(a.path(), &n, 30, false).unwrap();
        certs::issue(b.path(), &n, 30, false).unwrap();
        let err = load_certified_key(&a.path().join("server.crt"), &b.path().join("server.key"))
            .unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");

        let mode = TlsMode::Files {
            cert: a.path().join("server.crt"),
            key: a.path().join("server.key"),
            ca: None,
        };
        let server = TlsServer::prepare(&mode).unwrap().unwrap();
        assert!(
            !server.reload(false).unwrap(),
            "unchanged files are not reloaded"
        );
        std::fs::write(a.path().join("server.crt"), "garbage").unwrap();
        assert!(server.reload(true).is_err());
    }

    #[test]
    fn plain_http_answer_is_http() {
        let a = String::from_utf8(plain_http_answer(5000)).unwrap();
        assert!(a.starts_with("HTTP/1.1 400"));
        assert!(a.contains("https://HOST:5000/"));
    }
}
