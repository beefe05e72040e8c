//! The benchmark's HTTP client: one connection per transfer (TCP, then TLS
//! with the run's CA and ALPN `h2` before `http/1.1`, or plain HTTP/1.1),
//! driven by hyper's low-level connection API so nothing is pooled or
//! retried behind our back. The registry calls (upload, download, manifest
//! push) are in `data.rs` and the figure modules; this file only moves
//! requests and responses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::{Ctx, Res};

pub type Body = BoxBody<Bytes, std::io::Error>;

/// Where to connect and how.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// An `Authorization` header value sent with every request.
    pub auth: Option<String>,
}

/// A TLS client config trusting only `ca.crt`, offering h2 then http/1.1
/// (or only http/1.1 with `h2 == false`).
pub fn tls_config(ca_pem: &[u8], h2: bool) -> Res<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.ctx("parse ca.crt")?).ctx("add the CA")?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ctx("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    if h2 {
        cfg.alpn_protocols.insert(0, b"h2".to_vec());
    }
    // Every connection makes a full handshake, as a new client would; a
    // session cached from one server must not be offered to the next one
    // on the same address.
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}

/// One open connection.
pub enum Conn {
    H1(http1::SendRequest<Body>, String),
    H2(http2::SendRequest<Body>, String),
}

impl Conn {
    pub async fn open(t: &Target) -> Res<Conn> {
        let tcp = TcpStream::connect(t.addr)
            .await
            .ctx(format!("connect to {}", t.addr))?;
        tcp.set_nodelay(true).ctx("TCP_NODELAY")?;
        let authority = t.addr.to_string();
        let Some(cfg) = &t.tls else {
            let (send, conn) = http1::handshake(TokioIo::new(tcp))
                .await
                .ctx("HTTP/1.1 handshake")?;
            tokio::spawn(conn);
            return Ok(Conn::H1(send, format!("http://{authority}")));
        };
        let name = ServerName::IpAddress(t.addr.ip().into());
        let tls = TlsConnector::from(cfg.clone())
            .connect(name, tcp)
            .await
            .ctx(format!("TLS handshake with {}", t.addr))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (send, conn) = http2::Builder::new(TokioExecutor::new())
                // Windows large enough that the client never throttles a
                // 512 MiB download.
                .initial_stream_window_size(8 << 20)
                .initial_connection_window_size(16 << 20)
                .max_frame_size(1 << 20)
                .handshake(io)
                .await
                .ctx("HTTP/2 handshake")?;
            tokio::spawn(conn);
            Ok(Conn::H2(send, format!("https://{authority}")))
        } else {
            let (send, conn) = http1::handshake(io).await.ctx("HTTP/1.1 handshake")?;
            tokio::spawn(conn);
            Ok(Conn::H1(send, format!("https://{authority}")))
        }
    }

    pub fn protocol(&self) -> &'static str {
        match self {
            Conn::H1(..) => "HTTP/1.1",
            Conn::H2(..) => "HTTP/2",
        }
    }

    /// Sends a request for `path_and_query` (absolute for HTTP/2, origin
    /// form with `Host` for HTTP/1.1).
    pub async fn send(
        &mut self,
        t: &Target,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Body,
    ) -> Res<Response<Incoming>> {
        let (uri, base) = match self {
            Conn::H1(_, base) => (path.to_string(), base.clone()),
            Conn::H2(_, base) => (format!("{base}{path}"), base.clone()),
        };
        let mut req = Request::builder().method(method.clone()).uri(&uri);
        if let Conn::H1(..) = self {
            req = req.header("host", base.rsplit("//").next().unwrap_or_default());
        }
        if let Some(auth) = &t.auth {
            req = req.header("authorization", auth);
        }
        for (k, v) in headers {
            req = req.header(*k, HeaderValue::from_str(v).ctx("header value")?);
        }
        let req = req.body(body).ctx("build request")?;
        let what = format!("{method} {path}");
        match self {
            Conn::H1(send, _) => {
                send.ready().await.ctx(&what)?;
                send.send_request(req).await.ctx(&what)
            }
            Conn::H2(send, _) => {
                send.ready().await.ctx(&what)?;
                send.send_request(req).await.ctx(&what)
            }
        }
    }

    /// Sends a request and reads the whole (small) answer.
    pub async fn call(
        &mut self,
        t: &Target,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Body,
    ) -> Res<(StatusCode, http::HeaderMap, Bytes)> {
        let what = format!("{method} {path}");
        let resp = self.send(t, method, path, headers, body).await?;
        let (parts, body) = resp.into_parts();
        let bytes = tokio::time::timeout(Duration::from_secs(60), body.collect())
            .await
            .ctx(format!("{what}: reading the answer"))?
            .ctx(format!("{what}: reading the answer"))?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Fails unless `status` is `want`, quoting the answer.
pub fn expect(what: &str, status: StatusCode, want: u16, body: &[u8]) -> Res<()> {
    if status.as_u16() == want {
        return Ok(());
    }
    Err(format!(
        "{what}: expected {want}, got {status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(400)])
    ))
}

/// The path and query of a `Location` header (absolute or relative).
pub fn location(headers: &http::HeaderMap) -> Res<String> {
    let loc = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Location header in the answer")?;
    if loc.starts_with('/') {
        return Ok(loc.to_string());
    }
    let uri: http::Uri = loc.parse().ctx("Location header")?;
    Ok(uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into()))
}

/// Appends `key=value` to a path that may already have a query.
pub fn with_query(path: &str, key: &str, value: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{key}={value}")
}
