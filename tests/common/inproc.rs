//! An in-process regproxy over TLS (built-in CA in a temp dir) and the
//! clients that talk to it over HTTP/1.1 or HTTP/2 (ALPN), for tests that
//! must hold on both protocol versions.
//!
//! [`TlsServer::start`] takes YAML appended to a base config (TLS on, storage
//! and certificates in the temp dir), so a test can turn on logins
//! (`auth:`) or set `limits:`. [`Proto`] names the HTTP version a client
//! speaks; [`TlsServer::client`] builds a reqwest client that trusts the CA
//! and speaks exactly that version.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

/// Upper bound for one request made by these clients.
const TIMEOUT: Duration = Duration::from_secs(20);

/// The HTTP version a test client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 (ALPN `http/1.1` over TLS).
    Http1,
    /// HTTP/2 (ALPN `h2` over TLS).
    Http2,
}

impl Proto {
    /// The version every answer must come back with.
    pub fn version(self) -> reqwest::Version {
        match self {
            Proto::Http1 => reqwest::Version::HTTP_11,
            Proto::Http2 => reqwest::Version::HTTP_2,
        }
    }

    /// The ALPN protocol id.
    pub fn alpn(self) -> &'static [u8] {
        match self {
            Proto::Http1 => b"http/1.1",
            Proto::Http2 => b"h2",
        }
    }

    /// curl's flag for this version.
    pub fn curl_flag(self) -> &'static str {
        match self {
            Proto::Http1 => "--http1.1",
            Proto::Http2 => "--http2",
        }
    }
}

/// Both versions, for tests that loop.
pub const PROTOCOLS: [Proto; 2] = [Proto::Http1, Proto::Http2];

/// A registry over TLS served in-process on `127.0.0.1:0`; dropping it
/// asks the server to stop.
pub struct TlsServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    /// The built-in CA's certificate (PEM).
    pub ca_pem: Vec<u8>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

impl TlsServer {
    /// A server whose config is the base (TLS with the built-in CA in
    /// `DIR/certs`, storage in `DIR/data`) plus `yaml`. Without an `auth:`
    /// section in `yaml`, logins are off.
    pub async fn start(yaml: &str) -> TlsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        TlsServer::start_in(dir, yaml).await
    }

    /// Like [`TlsServer::start`], in a prepared directory (e.g. with an
    /// `htpasswd` file).
    pub async fn start_in(dir: tempfile::TempDir, yaml: &str) -> TlsServer {
        TlsServer::start_with(dir, "tls:\n  dir: certs\n", yaml).await
    }

    /// Like [`TlsServer::start_in`], but plain HTTP (no TLS, no CA).
    pub async fn start_plain_in(dir: tempfile::TempDir, yaml: &str) -> TlsServer {
        TlsServer::start_with(dir, "tls:\n  enabled: false\n", yaml).await
    }

    async fn start_with(dir: tempfile::TempDir, tls: &str, yaml: &str) -> TlsServer {
        let auth = if yaml.lines().any(|l| l.starts_with("auth:")) {
            ""
        } else {
            "auth:\n  enabled: false\n"
        };
        let text = format!("{tls}storage:\n  filesystem:\n    root: data\n{auth}{yaml}");
        let config = regproxy::config::Config::parse(&text, dir.path())
            .unwrap_or_else(|p| panic!("test config is invalid: {p:?}\n{text}"));
        let server = regproxy::proxy::Server::new(&config).expect("server prepares");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let ca_pem = std::fs::read(dir.path().join("certs/ca.crt")).unwrap_or_default();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(listener, async {
            let _ = rx.await;
        }));
        TlsServer {
            addr,
            dir,
            ca_pem,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// `https://127.0.0.1:PORT{path}` (`http` without TLS).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.ca_pem.is_empty() {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// A client that trusts the CA and speaks only `proto`.
    pub fn client(&self, proto: Proto) -> reqwest::Client {
        client_for(&self.ca_pem, proto)
    }

    /// A rustls client config trusting the CA, offering only `proto` in ALPN
    /// (for raw-socket tests).
    pub fn rustls_config(&self, proto: Proto) -> Arc<rustls::ClientConfig> {
        rustls_config(&self.ca_pem, proto)
    }

    /// Opens a TLS connection (ALPN `proto`) for raw-socket tests.
    pub async fn connect_tls(
        &self,
        proto: Proto,
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let connector = tokio_rustls::TlsConnector::from(self.rustls_config(proto));
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
        connector
            .connect(name, tcp)
            .await
            .expect("TLS handshake with the test server")
    }
}

/// A reqwest client trusting `ca_pem` that speaks only `proto`.
pub fn client_for(ca_pem: &[u8], proto: Proto) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(ca_pem).expect("CA certificate");
    let b = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca);
    let b = match proto {
        Proto::Http1 => b.http1_only(),
        // ALPN offers only h2: a server that cannot speak it fails loudly.
        Proto::Http2 => b.http2_prior_knowledge(),
    };
    b.build().expect("reqwest client")
}

/// A rustls client config trusting `ca_pem`, offering only `proto` in ALPN.
pub fn rustls_config(ca_pem: &[u8], proto: Proto) -> Arc<rustls::ClientConfig> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    let mut reader = std::io::BufReader::new(ca_pem);
    for cert in rustls_pemfile_certs(&mut reader) {
        roots.add(cert).expect("add CA");
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![proto.alpn().to_vec()];
    Arc::new(config)
}

fn rustls_pemfile_certs(
    reader: &mut dyn std::io::BufRead,
) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_reader_iter(reader)
        .map(|c| c.expect("PEM certificate"))
        .collect()
}
