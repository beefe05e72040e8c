//! The fixture: a registry served in-process over TLS (built-in CA) on
//! `127.0.0.1:0` with a temporary storage directory, spoken to over
//! HTTP/1.1 or HTTP/2 ([`Proto`], negotiated by ALPN), and raw requests a
//! URL library would not send (`..`, `%2e`), over either version.

use super::*;

/// With `REGPROXY_API_STORAGE=s3` (a second run in `scripts/test.sh`), the
/// suite runs on S3: one Garage node for the whole run (killed by pid when
/// the test process exits), a fresh key prefix per server.
fn s3_storage() -> Option<regproxy::config::s3::S3Settings> {
    static GARAGE: std::sync::OnceLock<(common::Garage, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    static GARAGE_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    extern "C" fn stop_garage() {
        let pid = GARAGE_PID.load(std::sync::atomic::Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) on the pid of the Garage this process started.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
    match std::env::var("REGPROXY_API_STORAGE").as_deref() {
        Ok("s3") => {}
        Ok("fs") | Err(_) => return None,
        Ok(other) => panic!("REGPROXY_API_STORAGE={other:?}: use fs or s3"),
    }
    let (g, creds) = GARAGE.get_or_init(|| {
        let g = common::Garage::start("api");
        let creds = g.credentials_file(g.dir());
        GARAGE_PID.store(g.pid(), std::sync::atomic::Ordering::SeqCst);
        // SAFETY: registers a plain function to run at exit.
        unsafe {
            libc::atexit(stop_garage);
        }
        (g, creds)
    });
    Some(regproxy::config::s3::S3Settings {
        endpoint: g.endpoint.clone(),
        region: "garage".into(),
        bucket: "api".into(),
        prefix: format!("t-{}", uuid::Uuid::new_v4()),
        path_style: true,
        credentials: regproxy::config::s3::CredentialsSource::File(creds.clone()),
        redirect_endpoint: None,
    })
}

/// A registry served in-process on `127.0.0.1:0`; dropping it asks the
/// server to stop.
pub struct Server {
    pub addr: SocketAddr,
    pub proto: Proto,
    client: reqwest::Client,
    ca_pem: Vec<u8>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), regproxy::proxy::ProxyError>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(proto: Proto) -> Server {
        Server::start_with(proto, false).await
    }

    pub async fn start_with(proto: Proto, trust_forwarded_headers: bool) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let certs = dir.path().join("certs");
        let config = Config {
            storage_root: dir.path().join("data"),
            trust_forwarded_headers,
            // TLS with the built-in CA in the temp dir (HTTP/2 needs ALPN).
            tls: regproxy::tls::TlsMode::Auto {
                dir: certs.clone(),
                extra: Default::default(),
            },
            // No authentication: these tests are about the API itself.
            auth: None,
            s3: s3_storage(),
            ..Config::default()
        };
        let server = regproxy::proxy::Server::new(&config).expect("server prepares");
        let ca_pem = std::fs::read(certs.join("ca.crt")).expect("the built-in CA");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            server
                .run(listener, async {
                    let _ = rx.await;
                })
                .await;
            Ok(())
        });
        Server {
            addr,
            proto,
            client: common::client_for(&ca_pem, proto),
            ca_pem,
            shutdown: Some(tx),
            handle: Some(handle),
            _dir: dir,
        }
    }

    /// Stops the server and returns what `run` returned.
    pub async fn stop(mut self) -> Result<(), regproxy::proxy::ProxyError> {
        // Drop pooled connections.
        self.client = common::client_for(&self.ca_pem, self.proto);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let handle = self.handle.take().unwrap();
        tokio::time::timeout(TIMEOUT, handle)
            .await
            .expect("server did not stop in time")
            .expect("server task panicked")
    }

    /// The URL on this server for a path (`/v2/...`) or a `Location` value.
    /// An absolute `Location` (from forwarded headers) is sent here too:
    /// tests only ever talk to 127.0.0.1.
    pub fn url(&self, path_or_url: &str) -> String {
        let path = match path_or_url.split_once("://") {
            Some((_, rest)) => &rest[rest.find('/').unwrap_or(rest.len())..],
            None => path_or_url,
        };
        format!("https://{}{path}", self.addr)
    }

    pub fn request(&self, method: Method, path: &str) -> Call {
        Call {
            what: format!("{:?} {method} {path}", self.proto),
            proto: self.proto,
            builder: self.client.request(method, self.url(path)),
        }
    }

    pub fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }
    pub fn head(&self, path: &str) -> Call {
        self.request(Method::HEAD, path)
    }
    pub fn post(&self, path: &str) -> Call {
        self.request(Method::POST, path)
    }
    pub fn put(&self, path: &str) -> Call {
        self.request(Method::PUT, path)
    }
    pub fn patch(&self, path: &str) -> Call {
        self.request(Method::PATCH, path)
    }
    pub fn delete(&self, path: &str) -> Call {
        self.request(Method::DELETE, path)
    }

    /// Sends a hand-written request over a fresh connection, for requests a
    /// URL library would normalize (`..`, `%2e`) or refuse to send. `head`
    /// is the request line plus any headers, each ending in CRLF. Over
    /// HTTP/1.1 it goes out as written (with `Host` and `Connection: close`
    /// added); over HTTP/2 the same method, path (as-is) and headers go out
    /// as one stream (`Transfer-Encoding` dropped: HTTP/2 frames the body).
    pub async fn raw(&self, head: &str, body: RawBody) -> Resp {
        let what = format!(
            "{:?} raw {}",
            self.proto,
            head.lines().next().unwrap_or_default()
        );
        let config = common::rustls_config(&self.ca_pem, self.proto);
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .unwrap_or_else(|e| panic!("{what}: TLS handshake: {e}"));
        let resp = match self.proto {
            Proto::Http1 => raw_http1(tls, &what, head, self.addr, body).await,
            Proto::Http2 => raw_http2(tls, &what, head, self.addr, body).await,
        };
        resp.check_api_version();
        resp
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A raw request over HTTP/1.1, written as-is.
async fn raw_http1<S>(stream: S, what: &str, head: &str, addr: SocketAddr, body: RawBody) -> Resp
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let request = format!("{head}Host: {addr}\r\nConnection: close\r\n\r\n");
    // The body is written concurrently: the server may answer before
    // reading it all, and then the write side may fail; that is fine.
    let writer = tokio::spawn(async move {
        wr.write_all(request.as_bytes()).await?;
        match body {
            RawBody::None => {}
            RawBody::Chunked { chunk, count } => {
                for _ in 0..count {
                    wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                        .await?;
                    wr.write_all(&chunk).await?;
                    wr.write_all(b"\r\n").await?;
                }
                wr.write_all(b"0\r\n\r\n").await?;
            }
        }
        wr.flush().await?;
        // Keep the write half open until the response is read.
        std::future::pending::<()>().await;
        Ok::<(), std::io::Error>(())
    });
    let read = async {
        let mut buf = Vec::new();
        let mut tmp = vec![0u8; 64 * 1024];
        loop {
            if let Some(resp) = parse_raw_response(what, &buf, false) {
                return resp;
            }
            match rd.read(&mut tmp).await {
                Ok(0) | Err(_) => {
                    return parse_raw_response(what, &buf, true).unwrap_or_else(|| {
                        panic!(
                            "{what}: connection closed without a complete response: {:?}",
                            String::from_utf8_lossy(&buf)
                        )
                    })
                }
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
    };
    let resp = tokio::time::timeout(TIMEOUT, read)
        .await
        .unwrap_or_else(|_| panic!("{what}: no response in time"));
    writer.abort();
    resp
}

/// The same request as one HTTP/2 stream: the path is sent as written.
async fn raw_http2<S>(stream: S, what: &str, head: &str, addr: SocketAddr, body: RawBody) -> Resp
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let line = lines.next().expect("a request line");
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap(), parts.next().unwrap());
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("https://{addr}{path}"));
    for l in lines {
        let (k, v) = l.split_once(':').expect("a header line");
        if !k.eq_ignore_ascii_case("transfer-encoding") {
            req = req.header(k.trim(), v.trim());
        }
    }
    type Frames = std::pin::Pin<
        Box<
            dyn futures_util::Stream<
                    Item = Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>,
                > + Send
                + Sync,
        >,
    >;
    let announced = head.to_ascii_lowercase().contains("\r\ncontent-length:");
    let frames: Frames = match body {
        // A length without a body: the body never comes (the server must
        // answer from the headers alone), as over HTTP/1.1.
        RawBody::None if announced => Box::pin(futures_util::stream::pending()),
        RawBody::None => Box::pin(futures_util::stream::empty()),
        RawBody::Chunked { chunk, count } => {
            Box::pin(futures_util::stream::iter((0..count).map(move |_| {
                Ok(hyper::body::Frame::data(bytes::Bytes::from(chunk.clone())))
            })))
        }
    };
    let body = http_body_util::StreamBody::new(frames).boxed();
    let req = req.body(body).expect("an HTTP/2 request");
    let exchange = async {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: HTTP/2 handshake: {e}"));
        tokio::spawn(conn);
        let r = sender
            .send_request(req)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{what}: body: {e}"))
            .to_bytes()
            .to_vec();
        Resp {
            what: what.to_string(),
            status,
            headers,
            body,
        }
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{what}: no response in time"))
}

pub enum RawBody {
    None,
    /// `count` chunks of `chunk` with `Transfer-Encoding: chunked` framing.
    Chunked {
        chunk: Vec<u8>,
        count: usize,
    },
}

/// Parses a complete HTTP/1.1 response (`Content-Length` framed, or up to
/// EOF when `eof`); `None` while incomplete.
pub fn parse_raw_response(what: &str, buf: &[u8], eof: bool) -> Option<Resp> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).expect("response head is not UTF-8");
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':')?;
        headers.append(
            reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()).ok()?,
            v.trim().parse().ok()?,
        );
    }
    let body = &buf[end + 4..];
    let length = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let body = match length {
        Some(n) if body.len() >= n => body[..n].to_vec(),
        None if eof => body.to_vec(),
        _ => return None,
    };
    Some(Resp {
        what: what.to_string(),
        status,
        headers,
        body,
    })
}
