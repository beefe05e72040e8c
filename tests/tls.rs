//! TLS front, in-process: certificates from the built-in CA, handshakes with
//! a rustls client that trusts only that CA, ALPN, TLS 1.2 and 1.3, the
//! plain-HTTP hint, `/ca.crt`, reload on change without dropping
//! connections, and clear startup errors.
//!
//! Long file: one test per TLS behaviour, sharing the in-process server and client helpers at the top.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regproxy::config::Config;
use regproxy::proxy::{ProxyError, Server};
use regproxy::tls::certs::{self, SubjectNames};
use regproxy::tls::{TlsError, TlsMode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server running in this process; stops when dropped.
struct TlsFixture {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _data: tempfile::TempDir,
}

impl TlsFixture {
    async fn start(tls: TlsMode) -> TlsFixture {
        let data = tempfile::tempdir().unwrap();
        let config = Config {
            storage_root: data.path().to_path_buf(),
            tls,
            auth: None,
            ..Config::default()
        };
        let server = Server::new(&config).expect("server prepares");
        assert_eq!(server.scheme(), "https");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(listener, async {
            let _ = rx.await;
        }));
        TlsFixture {
            addr,
            stop: Some(tx),
            _data: data,
        }
    }
}

impl Drop for TlsFixture {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn names(hosts: &[&str]) -> SubjectNames {
    let mut n = SubjectNames::default();
    for h in hosts {
        n.add_host(h).unwrap();
    }
    n
}

/// A cert dir with a CA and a server certificate for `hosts`.
fn cert_dir(hosts: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    certs::issue(dir.path(), &names(hosts), 30, false).unwrap();
    dir
}

fn auto(dir: &Path) -> TlsMode {
    TlsMode::Auto {
        dir: dir.to_path_buf(),
        extra: SubjectNames::default(),
    }
}

fn client_config(
    ca_file: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}

async fn handshake(
    addr: SocketAddr,
    name: &str,
    cfg: rustls::ClientConfig,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), connector.connect(server_name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Sends `GET /v2/` on a kept-alive connection and returns the status line.
async fn get_v2<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S) -> String {
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: registry.local\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    // The answer to /v2/ is a small JSON `{}`: read until it is complete.
    for _ in 0..100 {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "connection closed; got {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        if buf.ends_with(b"\r\n\r\n{}") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    assert!(
        text.to_ascii_lowercase()
            .contains("docker-distribution-api-version: registry/2.0"),
        "{text}"
    );
    text.lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn client_trusting_only_the_ca_connects_with_tls13_tls12_and_alpn() {
    let dir = cert_dir(&["registry.local", "127.0.0.1"]);
    let server = TlsFixture::start(auto(dir.path())).await;
    let ca = dir.path().join("ca.crt");

    let s = handshake(
        server.addr,
        "registry.local",
        client_config(&ca, BOTH, &[b"h2", b"http/1.1"]),
    )
    .await
    .expect("handshake with the CA");
    let (_, conn) = s.get_ref();
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
    let chain = conn.peer_certificates().unwrap();
    assert_eq!(chain.len(), 2, "leaf and CA are served");

    let mut s = handshake(
        server.addr,
        "registry.local",
        client_config(&ca, &[&rustls::version::TLS12], &[b"http/1.1"]),
    )
    .await
    .expect("TLS 1.2 handshake");
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(get_v2(&mut s).await, "HTTP/1.1 200 OK");

    // By IP address, as a client that has no DNS name for the registry.
    handshake(server.addr, "127.0.0.1", client_config(&ca, BOTH, &[]))
        .await
        .expect("the IP SAN is valid");
}

#[tokio::test]
async fn untrusted_ca_and_wrong_name_are_refused() {
    let dir = cert_dir(&["registry.local"]);
    let other = cert_dir(&["registry.local"]);
    let server = TlsFixture::start(auto(dir.path())).await;

    let err = handshake(
        server.addr,
        "registry.local",
        client_config(&other.path().join("ca.crt"), BOTH, &[]),
    )
    .await
    .expect_err("another CA must not be trusted");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    let err = handshake(
        server.addr,
        "evil.local",
        client_config(&dir.path().join("ca.crt"), BOTH, &[]),
    )
    .await
    .expect_err("a name not in the certificate must fail");
    assert!(err.to_string().contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn ca_is_served_and_plain_http_gets_a_readable_hint() {
    let dir = cert_dir(&["registry.local"]);
    let server = TlsFixture::start(auto(dir.path())).await;

    let mut s = handshake(
        server.addr,
        "registry.local",
        client_config(&dir.path().join("ca.crt"), BOTH, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    s.write_all(b"GET /ca.crt HTTP/1.1\r\nHost: registry.local\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    let resp = String::from_utf8(resp).unwrap();
    let ca_pem = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with(&ca_pem), "the body is ca.crt exactly");

    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request"), "{answer}");
    assert!(answer.contains("This port speaks HTTPS"), "{answer}");
    assert!(
        answer.contains(&format!("https://HOST:{}/", server.addr.port())),
        "{answer}"
    );
}

/// Polls (bounded) until a handshake for `name` succeeds.
async fn wait_for_name(addr: SocketAddr, name: &str, ca: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if handshake(addr, name, client_config(ca, BOTH, &[]))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn new_certificate_files_are_picked_up_without_dropping_connections() {
    let dir = cert_dir(&["registry.local"]);
    let ca = dir.path().join("ca.crt");
    let server = TlsFixture::start(auto(dir.path())).await;

    // A connection made before the reload...
    let mut before = handshake(
        server.addr,
        "registry.local",
        client_config(&ca, BOTH, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(get_v2(&mut before).await, "HTTP/1.1 200 OK");
    assert!(handshake(
        server.addr,
        "registry2.local",
        client_config(&ca, BOTH, &[])
    )
    .await
    .is_err());

    // Re-issue from the same CA for a new name.
    certs::issue(dir.path(), &names(&["registry2.local"]), 30, false).unwrap();
    assert!(
        wait_for_name(server.addr, "registry2.local", &ca).await,
        "new certificate served"
    );
    // ...keeps working after it.
    assert_eq!(get_v2(&mut before).await, "HTTP/1.1 200 OK");

    // A broken file keeps the previous certificate.
    std::fs::write(dir.path().join("server.crt"), "not a certificate").unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        handshake(
            server.addr,
            "registry2.local",
            client_config(&ca, BOTH, &[]),
        )
        .await
        .expect("old certificate still served after a broken update");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn first_start_generates_ca_and_certificate_for_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let certs_dir = dir.path().join("certs");
    let server = TlsFixture::start(auto(&certs_dir)).await;
    for f in ["ca.crt", "ca.key", "server.crt", "server.key"] {
        assert!(certs_dir.join(f).is_file(), "{f} generated");
    }
    let leaf = certs::inspect(
        &certs::pem_to_der(&std::fs::read_to_string(certs_dir.join("server.crt")).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(leaf.dns_names.contains(&"localhost".to_string()));
    assert!(leaf.ips.contains(&"127.0.0.1".parse().unwrap()));
    assert!(!leaf.is_ca && leaf.server_auth);
    handshake(
        server.addr,
        "localhost",
        client_config(&certs_dir.join("ca.crt"), BOTH, &[]),
    )
    .await
    .expect("generated certificate is valid for localhost");

    // A second start uses the files as they are.
    let before = std::fs::read(certs_dir.join("server.crt")).unwrap();
    let _again = TlsFixture::start(auto(&certs_dir)).await;
    assert_eq!(std::fs::read(certs_dir.join("server.crt")).unwrap(), before);
}

fn prepare_error(tls: TlsMode) -> TlsError {
    let data = tempfile::tempdir().unwrap();
    let config = Config {
        storage_root: data.path().to_path_buf(),
        tls,
        auth: None,
        ..Config::default()
    };
    match Server::new(&config) {
        Err(ProxyError::Tls(e)) => e,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("server must refuse to start"),
    }
}

fn files(cert: PathBuf, key: PathBuf) -> TlsMode {
    TlsMode::Files {
        cert,
        key,
        ca: None,
    }
}

#[test]
fn startup_errors_are_clear() {
    let a = cert_dir(&["a.local"]);
    let b = cert_dir(&["b.local"]);

    let e = prepare_error(files(
        a.path().join("server.crt"),
        b.path().join("server.key"),
    ));
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("does not belong"), "{e}");

    let e = prepare_error(files(
        a.path().join("missing.crt"),
        a.path().join("server.key"),
    ));
    assert!(matches!(e, TlsError::Read { .. }), "{e}");
    assert!(e.to_string().contains("missing.crt"));

    let garbage = a.path().join("garbage.crt");
    std::fs::write(&garbage, "hello").unwrap();
    let e = prepare_error(files(garbage, a.path().join("server.key")));
    assert!(matches!(e, TlsError::NoCertificates { .. }), "{e}");

    // An expired certificate, made with rcgen directly.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["old.local".to_string()]).unwrap();
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let cert = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("old.key"), key.serialize_pem()).unwrap();
    let e = prepare_error(files(
        dir.path().join("old.crt"),
        dir.path().join("old.key"),
    ));
    assert!(matches!(e, TlsError::Expired { .. }), "{e}");
    assert!(e.hint().contains("gen-cert"));
}

#[tokio::test]
async fn sighup_reloads_a_certificate_even_when_its_time_did_not_change() {
    let dir = cert_dir(&["registry.local"]);
    let ca = dir.path().join("ca.crt");
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "tls:\n  dir: {}\nauth:\n  enabled: false\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = common::serve_config(&config, data.path());
    let addr = server.addr();
    handshake(addr, "registry.local", client_config(&ca, BOTH, &[]))
        .await
        .expect("initial certificate");

    // New files with the old modification times: the watcher cannot tell.
    let times: Vec<_> = ["server.crt", "server.key"]
        .iter()
        .map(|f| {
            std::fs::metadata(dir.path().join(f))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    certs::issue(dir.path(), &names(&["registry2.local"]), 30, false).unwrap();
    for (f, t) in ["server.crt", "server.key"].iter().zip(times) {
        std::fs::File::options()
            .write(true)
            .open(dir.path().join(f))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        handshake(addr, "registry2.local", client_config(&ca, BOTH, &[]))
            .await
            .is_err(),
        "without SIGHUP the unchanged-looking files are not reloaded"
    );
    // SAFETY: kill(2) on the pid of a child this test started and still owns.
    let rc = unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(rc, 0);
    assert!(
        wait_for_name(addr, "registry2.local", &ca).await,
        "SIGHUP reloads"
    );
    assert!(server.logs().contains("reloaded the TLS certificate"));
}

/// A key made by the openssl command in the formats operators bring (RSA
/// as PKCS#8 and PKCS#1, EC as SEC1), and a certificate for it signed by an
/// openssl-made CA (`DIR/ca.crt`).
fn openssl_cert(dir: &Path, kind: &str) -> (PathBuf, PathBuf) {
    let openssl = common::require_tool("openssl", "openssl");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    if !dir.join("ca.crt").exists() {
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=operator test CA",
            "-days",
            "30",
        ]);
        std::fs::write(
            dir.join("leaf.ext"),
            "subjectAltName=DNS:registry.local\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
    }
    let key = format!("{kind}.key");
    match kind {
        "rsa-pkcs8" => run(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &key,
        ]),
        "rsa-pkcs1" => run(&["genrsa", "-traditional", "-out", &key, "2048"]),
        "ec-sec1" => run(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &key,
        ]),
        _ => unreachable!(),
    }
    let csr = format!("{kind}.csr");
    let crt = format!("{kind}.crt");
    run(&[
        "req",
        "-new",
        "-key",
        &key,
        "-out",
        &csr,
        "-subj",
        "/CN=registry.local",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        &crt,
        "-days",
        "30",
        "-extfile",
        "leaf.ext",
    ]);
    (dir.join(crt), dir.join(key))
}

#[tokio::test]
async fn operator_certificates_with_rsa_and_ec_keys_in_every_pem_form_are_served() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["rsa-pkcs8", "rsa-pkcs1", "ec-sec1"] {
        let (cert, key) = openssl_cert(dir.path(), kind);
        let header = std::fs::read_to_string(&key).unwrap();
        let expected = match kind {
            "rsa-pkcs8" => "BEGIN PRIVATE KEY",
            "rsa-pkcs1" => "BEGIN RSA PRIVATE KEY",
            _ => "BEGIN EC PRIVATE KEY",
        };
        assert!(header.contains(expected), "{kind}: {header}");
        let server = TlsFixture::start(TlsMode::Files {
            cert: cert.clone(),
            key,
            ca: None,
        })
        .await;
        handshake(
            server.addr,
            "registry.local",
            client_config(&dir.path().join("ca.crt"), BOTH, &[]),
        )
        .await
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}
