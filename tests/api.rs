//! Integration tests of the registry HTTP API: every endpoint and every error
//! code of the OCI distribution-spec v1.1 / Docker Registry HTTP API V2,
//! against the real server started in-process on port 0 with a temporary
//! storage directory (one server per test).
//!
//! Expectations follow the specification and what Docker / OCI clients need,
//! not the current implementation. Every response is checked for
//! `Docker-Distribution-Api-Version: registry/2.0`, and every error response
//! for the OCI error JSON.
//!
//! Layout: fixture (server, requests, responses) -> push helpers -> tests by
//! endpoint (base, blobs, uploads, mounts, manifests, referrers, tags,
//! catalog, names and methods, Location headers, hostile input, shutdown).

use std::net::SocketAddr;
use std::time::Duration;

use regproxy::config::Config;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound for any one request, and for the server to stop.
const TIMEOUT: Duration = Duration::from_secs(20);

const MIB: usize = 1024 * 1024;
/// The manifest size every registry must accept, and the server's limit.
const MANIFEST_LIMIT: usize = 4 * MIB;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// sha256 of `{}`, the OCI empty descriptor's content.
const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

// ---------------------------------------------------------------------------
// Fixture: the server
// ---------------------------------------------------------------------------

/// A registry served in-process on `127.0.0.1:0`; dropping it asks the
/// server to stop.
struct Server {
    addr: SocketAddr,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), regproxy::proxy::ProxyError>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        Server::start_with(false).await
    }

    async fn start_with(trust_forwarded_headers: bool) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            storage_root: dir.path().to_path_buf(),
            trust_forwarded_headers,
            // Plain HTTP. (The default is TLS with certificates generated
            // in `./certs`, which would write into the working directory.)
            tls: regproxy::tls::TlsMode::Disabled,
            // No authentication: these tests are about the API itself.
            auth: None,
            ..Config::default()
        };
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(regproxy::proxy::run(listener, config, async {
            let _ = rx.await;
        }));
        // reqwest is built with rustls but no default crypto provider (the
        // TLS tests need it); plain HTTP still needs one installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()
            .unwrap();
        Server {
            addr,
            client,
            shutdown: Some(tx),
            handle: Some(handle),
            _dir: dir,
        }
    }

    /// Stops the server and returns what `run` returned.
    async fn stop(mut self) -> Result<(), regproxy::proxy::ProxyError> {
        self.client = reqwest::Client::new(); // drop pooled connections
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
    fn url(&self, path_or_url: &str) -> String {
        let path = match path_or_url.split_once("://") {
            Some((_, rest)) => &rest[rest.find('/').unwrap_or(rest.len())..],
            None => path_or_url,
        };
        format!("http://{}{path}", self.addr)
    }

    fn request(&self, method: Method, path: &str) -> Call {
        Call {
            what: format!("{method} {path}"),
            builder: self.client.request(method, self.url(path)),
        }
    }

    fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }
    fn head(&self, path: &str) -> Call {
        self.request(Method::HEAD, path)
    }
    fn post(&self, path: &str) -> Call {
        self.request(Method::POST, path)
    }
    fn put(&self, path: &str) -> Call {
        self.request(Method::PUT, path)
    }
    fn patch(&self, path: &str) -> Call {
        self.request(Method::PATCH, path)
    }
    fn delete(&self, path: &str) -> Call {
        self.request(Method::DELETE, path)
    }

    /// Sends a hand-written request over a fresh connection, for requests a
    /// URL library would normalize (`..`, `%2e`) or refuse to send. `head`
    /// is the request line plus any headers, each ending in CRLF; `Host` and
    /// `Connection: close` are added.
    async fn raw(&self, head: &str, body: RawBody) -> Resp {
        let what = head.lines().next().unwrap_or_default().to_string();
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let (mut rd, mut wr) = stream.into_split();
        let request = format!("{head}Host: {}\r\nConnection: close\r\n\r\n", self.addr);
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
                if let Some(resp) = parse_raw_response(&what, &buf, false) {
                    return resp;
                }
                match rd.read(&mut tmp).await {
                    Ok(0) | Err(_) => {
                        return parse_raw_response(&what, &buf, true).unwrap_or_else(|| {
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

enum RawBody {
    None,
    /// `count` chunks of `chunk` with `Transfer-Encoding: chunked` framing.
    Chunked {
        chunk: Vec<u8>,
        count: usize,
    },
}

/// Parses a complete HTTP/1.1 response (`Content-Length` framed, or up to
/// EOF when `eof`); `None` while incomplete.
fn parse_raw_response(what: &str, buf: &[u8], eof: bool) -> Option<Resp> {
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

/// A request being built.
struct Call {
    what: String,
    builder: reqwest::RequestBuilder,
}

impl Call {
    fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.builder = self.builder.body(bytes.into());
        self
    }

    /// A body of unknown length, sent with `Transfer-Encoding: chunked`.
    fn chunked(mut self, chunks: Vec<Vec<u8>>) -> Self {
        let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        self.builder = self.builder.body(reqwest::Body::wrap_stream(stream));
        self
    }

    async fn send(self) -> Resp {
        let what = self.what;
        let r = self
            .builder
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: transport error: {e:?}"));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{what}: reading the body failed: {e}"))
            .to_vec();
        let resp = Resp {
            what,
            status,
            headers,
            body,
        };
        resp.check_api_version();
        resp
    }
}

/// A whole response.
struct Resp {
    what: String,
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {}", self.what, self.text()))
    }

    /// Every answer, success or error, carries the API version header.
    #[track_caller]
    fn check_api_version(&self) {
        assert_eq!(
            self.header("docker-distribution-api-version"),
            Some("registry/2.0"),
            "{}: Docker-Distribution-Api-Version missing (status {})",
            self.what,
            self.status
        );
    }

    #[track_caller]
    fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "{}: unexpected status; body: {}",
            self.what,
            self.text()
        );
        self
    }

    #[track_caller]
    fn expect_header(&self, name: &str, value: &str) -> &Self {
        assert_eq!(
            self.header(name),
            Some(value),
            "{}: header {name} (status {}, body {})",
            self.what,
            self.status,
            self.text()
        );
        self
    }

    #[track_caller]
    fn expect_no_header(&self, name: &str) -> &Self {
        assert_eq!(
            self.header(name),
            None,
            "{}: header {name} must be absent",
            self.what
        );
        self
    }

    /// The OCI error JSON: `{"errors":[{"code":..., "message":...}]}` with
    /// codes of upper-case letters and `_`. Returns the first code.
    fn error_code(&self) -> Result<String, String> {
        let ct = self.header("content-type").unwrap_or_default();
        if !ct.starts_with("application/json") {
            return Err(format!("Content-Type {ct:?} is not application/json"));
        }
        let v: Value = serde_json::from_slice(&self.body)
            .map_err(|e| format!("body is not JSON ({e}): {}", self.text()))?;
        let errors = v["errors"]
            .as_array()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| format!("no `errors` array: {v}"))?;
        for e in errors {
            let code = e["code"]
                .as_str()
                .ok_or_else(|| format!("error without a string `code`: {v}"))?;
            if code.is_empty() || !code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                return Err(format!("code {code:?} is not upper-case letters and `_`"));
            }
            if !(e["message"].is_string() || e["message"].is_null()) {
                return Err(format!("`message` is not a string: {v}"));
            }
        }
        Ok(errors[0]["code"].as_str().unwrap_or_default().to_string())
    }

    #[track_caller]
    fn expect_error(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        match self.error_code() {
            Ok(c) => assert_eq!(c, code, "{}: error code; body: {}", self.what, self.text()),
            Err(e) => panic!("{}: not an OCI error body: {e}", self.what),
        }
        self
    }

    /// For `HEAD`: the status, and no body.
    #[track_caller]
    fn expect_head_error(&self, status: u16) -> &Self {
        self.expect(status);
        assert!(
            self.body.is_empty(),
            "{}: HEAD answer has a body",
            self.what
        );
        self
    }

    fn location(&self) -> String {
        self.header("location")
            .unwrap_or_else(|| panic!("{}: no Location header", self.what))
            .to_string()
    }
}

// ---------------------------------------------------------------------------
// Content and push helpers
// ---------------------------------------------------------------------------

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn sha512(bytes: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes)))
}

/// Deterministic pseudo-random bytes (xorshift).
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Appends a query parameter to a `Location` (which may have a query).
fn with_query(location: &str, key: &str, value: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{key}={value}")
}

/// A content descriptor for `bytes`.
fn desc(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(bytes), "size": bytes.len() })
}

fn to_bytes(v: &Value) -> Vec<u8> {
    // Pretty-printed with a trailing newline: not the canonical form, so a
    // registry that re-serializes would be caught.
    let mut b = serde_json::to_vec_pretty(v).unwrap();
    b.push(b'\n');
    b
}

/// A manifest as pushed: its exact bytes and digest.
struct Pushed {
    bytes: Vec<u8>,
    digest: String,
}

impl Server {
    /// Pushes a blob monolithically (`POST ?digest=`); returns its digest.
    async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let d = sha256(bytes);
        self.post(&format!("/v2/{repo}/blobs/uploads/?digest={d}"))
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .expect(201);
        d
    }

    /// Starts an upload session; returns its `Location`.
    async fn start_upload(&self, repo: &str) -> String {
        let r = self
            .post(&format!("/v2/{repo}/blobs/uploads/"))
            .send()
            .await;
        r.expect(202);
        r.location()
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Resp {
        self.put(&format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(bytes)
            .send()
            .await
    }

    /// Pushes a manifest, expecting `201`; returns its digest.
    async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let r = self.put_manifest(repo, reference, media_type, bytes).await;
        r.expect(201);
        let d = sha256(bytes);
        r.expect_header("docker-content-digest", &d);
        d
    }

    /// Pushes a config and one layer, then an image manifest (Docker
    /// schema2 or OCI, by `media_type`) under `reference`.
    async fn push_image(&self, repo: &str, reference: &str, media_type: &str, seed: u64) -> Pushed {
        let (config_type, layer_type) = if media_type == DOCKER_MANIFEST {
            (DOCKER_CONFIG, DOCKER_LAYER)
        } else {
            (OCI_CONFIG, OCI_LAYER)
        };
        let config = to_bytes(&json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": [] },
            "config": { "Labels": { "seed": seed.to_string() } }
        }));
        let layer = data(1000 + seed as usize, seed);
        self.push_blob(repo, &config).await;
        self.push_blob(repo, &layer).await;
        let bytes = to_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": desc(config_type, &config),
            "layers": [desc(layer_type, &layer)],
        }));
        let reference = if reference.is_empty() {
            sha256(&bytes)
        } else {
            reference.to_string()
        };
        let digest = self
            .push_manifest(repo, &reference, media_type, &bytes)
            .await;
        Pushed { bytes, digest }
    }

    /// The tags of a repository (expects `200`).
    async fn tags(&self, repo: &str) -> Vec<String> {
        let r = self.get(&format!("/v2/{repo}/tags/list")).send().await;
        r.expect(200);
        let v = r.json();
        assert_eq!(v["name"], repo);
        serde_json::from_value(v["tags"].clone()).unwrap()
    }

    /// The status of an upload session (`GET` on its `Location`): `204`
    /// with `Range: range`.
    async fn expect_upload_range(&self, loc: &str, range: &str) -> Resp {
        let r = self.get(loc).send().await;
        r.expect(204).expect_header("range", range);
        r
    }

    /// `GET`, `HEAD` and `DELETE` of `path` are all `404`, with the error
    /// `code` where there is a body.
    async fn expect_unknown(&self, path: &str, code: &str) {
        self.get(path).send().await.expect_error(404, code);
        self.head(path).send().await.expect_head_error(404);
        self.delete(path).send().await.expect_error(404, code);
    }
}

/// The target of a `Link: <...>; rel="next"` header.
fn next_link(r: &Resp) -> Option<String> {
    let link = r.header("link")?;
    assert!(
        link.ends_with(">; rel=\"next\""),
        "{}: Link {link:?} is not rel=\"next\"",
        r.what
    );
    let start = link.find('<')? + 1;
    let end = link.find('>')?;
    Some(link[start..end].to_string())
}

/// Follows `Link` headers from `first`, returning each page's list under
/// `key` (at most 20 pages).
async fn pages(s: &Server, first: &str, key: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut next = Some(first.to_string());
    for _ in 0..20 {
        let Some(url) = next.take() else {
            return out;
        };
        let r = s.get(&url).send().await;
        r.expect(200);
        out.push(serde_json::from_value(r.json()[key].clone()).unwrap());
        next = next_link(&r);
    }
    panic!("more than 20 pages from {first}");
}

// ---------------------------------------------------------------------------
// Base
// ---------------------------------------------------------------------------

#[tokio::test]
async fn base_endpoint_answers_200_with_api_version() {
    let s = Server::start().await;
    let r = s.get("/v2/").send().await;
    r.expect(200)
        .expect_header("docker-distribution-api-version", "registry/2.0");
    let r = s.head("/v2/").send().await;
    r.expect(200);
    // Error answers carry the header too (checked on every response by
    // `send`; asserted here explicitly once).
    let r = s.get("/v2/nope/tags/list").send().await;
    r.expect_error(404, "NAME_UNKNOWN")
        .expect_header("docker-distribution-api-version", "registry/2.0");
    let r = s.get("/v3/").send().await;
    r.expect(404)
        .expect_header("docker-distribution-api-version", "registry/2.0");
}

// ---------------------------------------------------------------------------
// Blobs
// ---------------------------------------------------------------------------

#[tokio::test]
async fn blob_get_and_head() {
    let s = Server::start().await;
    let blob = data(3000, 1);
    let d = s.push_blob("blob/app", &blob).await;
    let path = format!("/v2/blob/app/blobs/{d}");

    let r = s.get(&path).send().await;
    r.expect(200)
        .expect_header("docker-content-digest", &d)
        .expect_header("content-length", "3000");
    assert_eq!(r.body, blob);

    let r = s.head(&path).send().await;
    r.expect(200)
        .expect_header("docker-content-digest", &d)
        .expect_header("content-length", "3000");
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn blob_range_requests() {
    let s = Server::start().await;
    let blob = data(100, 2);
    let d = s.push_blob("blob/range", &blob).await;
    let path = format!("/v2/blob/range/blobs/{d}");

    for (range, content_range, slice) in [
        ("bytes=10-19", "bytes 10-19/100", 10..20),
        ("bytes=0-0", "bytes 0-0/100", 0..1),
        ("bytes=90-", "bytes 90-99/100", 90..100),
        ("bytes=-5", "bytes 95-99/100", 95..100),
        ("bytes=95-200", "bytes 95-99/100", 95..100),
        ("bytes=-500", "bytes 0-99/100", 0..100),
    ] {
        let r = s.get(&path).header("range", range).send().await;
        r.expect(206)
            .expect_header("content-range", content_range)
            .expect_header("content-length", &slice.len().to_string())
            .expect_header("docker-content-digest", &d);
        assert_eq!(r.body, blob[slice], "{range}");
    }

    for range in ["bytes=100-", "bytes=200-300", "bytes=100-100"] {
        let r = s.get(&path).header("range", range).send().await;
        r.expect_error(416, "RANGE_INVALID")
            .expect_header("content-range", "bytes */100");
    }
}

#[tokio::test]
async fn blob_delete() {
    let s = Server::start().await;
    let d = s.push_blob("blob/del", b"delete me").await;
    let path = format!("/v2/blob/del/blobs/{d}");
    s.delete(&path).send().await.expect(202);
    s.expect_unknown(&path, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn unknown_blob_is_blob_unknown() {
    let s = Server::start().await;
    s.push_blob("blob/known", b"something").await;
    let d = sha256(b"never pushed");
    for repo in ["blob/known", "no/such/repo"] {
        let path = format!("/v2/{repo}/blobs/{d}");
        s.expect_unknown(&path, "BLOB_UNKNOWN").await;
    }
}

#[tokio::test]
async fn blob_is_scoped_to_its_repository() {
    let s = Server::start().await;
    let blob = data(500, 3);
    let d = s.push_blob("team-a/app", &blob).await;
    s.push_blob("team-b/app", b"team b has a repository too")
        .await;
    let path = format!("/v2/team-b/app/blobs/{d}");
    s.get(&path).send().await.expect_error(404, "BLOB_UNKNOWN");
    s.head(&path).send().await.expect_head_error(404);
    s.post(&format!(
        "/v2/team-b/app/blobs/uploads/?mount={d}&from=team-a/app"
    ))
    .send()
    .await
    .expect(201);
    let r = s.get(&path).send().await;
    r.expect(200);
    assert_eq!(r.body, blob);
}

// ---------------------------------------------------------------------------
// Uploads
// ---------------------------------------------------------------------------

#[tokio::test]
async fn upload_session_start() {
    let s = Server::start().await;
    let r = s.post("/v2/up/app/blobs/uploads/").send().await;
    r.expect(202).expect_header("range", "0-0");
    let loc = r.location();
    assert!(
        loc.starts_with("/v2/up/app/blobs/uploads/"),
        "Location {loc}"
    );
    let uuid = r.header("docker-upload-uuid").expect("Docker-Upload-UUID");
    assert!(loc.ends_with(uuid), "Location {loc} vs uuid {uuid}");
    assert_eq!(uuid.len(), 36, "uuid {uuid}");
    // Without the trailing slash too (Docker clients send both forms).
    s.post("/v2/up/app/blobs/uploads").send().await.expect(202);
}

#[tokio::test]
async fn monolithic_post_with_digest() {
    let s = Server::start().await;
    let blob = data(2048, 4);
    let d = sha256(&blob);
    let r = s
        .post(&format!("/v2/mono/app/blobs/uploads/?digest={d}"))
        .header("content-type", "application/octet-stream")
        .body(blob.clone())
        .send()
        .await;
    r.expect(201)
        .expect_header("location", &format!("/v2/mono/app/blobs/{d}"))
        .expect_header("docker-content-digest", &d);
    let r = s.get(&r.location()).send().await;
    r.expect(200);
    assert_eq!(r.body, blob);
}

#[tokio::test]
async fn monolithic_post_then_put() {
    let s = Server::start().await;
    let blob = data(777, 5);
    let d = sha256(&blob);
    let loc = s.start_upload("mono/put").await;
    let r = s
        .put(&with_query(&loc, "digest", &d))
        .header("content-type", "application/octet-stream")
        .body(blob.clone())
        .send()
        .await;
    r.expect(201)
        .expect_header("location", &format!("/v2/mono/put/blobs/{d}"))
        .expect_header("docker-content-digest", &d);
    assert_eq!(s.get(&r.location()).send().await.expect(200).body, blob);
}

#[tokio::test]
async fn empty_blob() {
    let s = Server::start().await;
    let d = sha256(b"");
    s.post(&format!("/v2/empty/app/blobs/uploads/?digest={d}"))
        .send()
        .await
        .expect(201);
    let r = s.get(&format!("/v2/empty/app/blobs/{d}")).send().await;
    r.expect(200).expect_header("content-length", "0");
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn chunked_upload_with_content_range() {
    let s = Server::start().await;
    let blob = data(25, 6);
    let d = sha256(&blob);
    let loc = s.start_upload("chunk/app").await;

    let r = s
        .patch(&loc)
        .header("content-type", "application/octet-stream")
        .header("content-range", "0-9")
        .body(blob[..10].to_vec())
        .send()
        .await;
    r.expect(202).expect_header("range", "0-9");
    assert!(r.header("docker-upload-uuid").is_some());
    let loc = r.location();
    assert!(loc.starts_with("/v2/chunk/app/blobs/uploads/"), "{loc}");

    let r = s
        .patch(&loc)
        .header("content-type", "application/octet-stream")
        .header("content-range", "10-24")
        .body(blob[10..].to_vec())
        .send()
        .await;
    r.expect(202).expect_header("range", "0-24");
    let loc = r.location();

    s.expect_upload_range(&loc, "0-24")
        .await
        .expect_header("location", &loc);

    let r = s.put(&with_query(&loc, "digest", &d)).send().await;
    r.expect(201)
        .expect_header("location", &format!("/v2/chunk/app/blobs/{d}"))
        .expect_header("docker-content-digest", &d);
    assert_eq!(s.get(&r.location()).send().await.expect(200).body, blob);
}

#[tokio::test]
async fn streamed_patch_without_content_range() {
    let s = Server::start().await;
    let blob = data(3 * 1000 + 500 + 42, 7);
    let d = sha256(&blob);
    let loc = s.start_upload("stream/app").await;

    // Transfer-Encoding: chunked, as the Docker client streams layers.
    let r = s
        .patch(&loc)
        .chunked(blob[..3000].chunks(1000).map(<[u8]>::to_vec).collect())
        .send()
        .await;
    r.expect(202).expect_header("range", "0-2999");
    // With Content-Length and no Content-Range.
    let r = s
        .patch(&r.location())
        .body(blob[3000..3500].to_vec())
        .send()
        .await;
    r.expect(202).expect_header("range", "0-3499");
    // The final chunk in the closing PUT.
    let r = s
        .put(&with_query(&r.location(), "digest", &d))
        .header("content-type", "application/octet-stream")
        .body(blob[3500..].to_vec())
        .send()
        .await;
    r.expect(201).expect_header("docker-content-digest", &d);
    assert_eq!(s.get(&r.location()).send().await.expect(200).body, blob);
}

#[tokio::test]
async fn out_of_order_chunks_are_416() {
    let s = Server::start().await;
    let blob = data(30, 8);
    let d = sha256(&blob);
    let loc = s.start_upload("order/app").await;
    let chunk = |range: &str, bytes: &[u8]| {
        s.patch(&loc)
            .header("content-type", "application/octet-stream")
            .header("content-range", range)
            .body(bytes.to_vec())
            .send()
    };

    // The first chunk must start at 0.
    let r = chunk("5-9", &blob[5..10]).await;
    r.expect(416);
    r.error_code().unwrap();
    chunk("0-9", &blob[..10]).await.expect(202);
    // A gap, and a retry of the accepted chunk.
    for (range, bytes) in [("20-29", &blob[20..]), ("0-9", &blob[..10])] {
        let r = chunk(range, bytes).await;
        r.expect(416);
        let code = r.error_code().unwrap();
        assert!(
            code == "BLOB_UPLOAD_INVALID" || code == "RANGE_INVALID",
            "{range}: {code}"
        );
    }
    // The status still says 0-9, and the upload goes on from there.
    s.expect_upload_range(&loc, "0-9").await;
    chunk("10-19", &blob[10..20])
        .await
        .expect(202)
        .expect_header("range", "0-19");
    // An out-of-order final chunk in the PUT is 416 too.
    let put = |range: &str, bytes: &[u8]| {
        s.put(&with_query(&loc, "digest", &d))
            .header("content-type", "application/octet-stream")
            .header("content-range", range)
            .body(bytes.to_vec())
            .send()
    };
    put("25-29", &blob[25..]).await.expect(416);
    s.expect_upload_range(&loc, "0-19").await;
    put("20-29", &blob[20..]).await.expect(201);
    assert_eq!(
        s.get(&format!("/v2/order/app/blobs/{d}"))
            .send()
            .await
            .expect(200)
            .body,
        blob
    );
}

#[tokio::test]
async fn concurrent_chunks_on_one_session_are_ordered() {
    // A client retrying a chunk while the first attempt is still running:
    // exactly one is appended, the other is out of order.
    let s = Server::start().await;
    let blob = data(100_000, 16);
    let loc = s.start_upload("race/app").await;
    let chunk = || {
        s.patch(&loc)
            .header("content-range", "0-99999")
            .body(blob.clone())
            .send()
    };
    let (a, b) = tokio::join!(chunk(), chunk());
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 416], "{} / {}", a.text(), b.text());
    s.expect_upload_range(&loc, "0-99999").await;
    s.put(&with_query(&loc, "digest", &sha256(&blob)))
        .send()
        .await
        .expect(201);
}

#[tokio::test]
async fn upload_cancel() {
    let s = Server::start().await;
    let loc = s.start_upload("cancel/app").await;
    s.patch(&loc)
        .body(b"partial".to_vec())
        .send()
        .await
        .expect(202);
    s.delete(&loc).send().await.expect(204);
    s.get(&loc)
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    s.patch(&loc)
        .body(b"more".to_vec())
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    s.put(&with_query(&loc, "digest", &sha256(b"partial")))
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    s.delete(&loc)
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn unknown_upload_ids() {
    let s = Server::start().await;
    let d = sha256(b"x");
    let unknown = "/v2/up/app/blobs/uploads/0b0e2d42-5b8b-4f5e-9a8b-0123456789ab";
    let malformed = "/v2/up/app/blobs/uploads/not-an-upload-id";
    for path in [unknown, malformed] {
        s.get(path)
            .send()
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        s.patch(path)
            .body(b"x".to_vec())
            .send()
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        s.put(&with_query(path, "digest", &d))
            .body(b"x".to_vec())
            .send()
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        s.delete(path)
            .send()
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    }

    // A session belongs to the repository it was started in.
    let loc = s.start_upload("up/app").await;
    let foreign = loc.replace("/v2/up/app/", "/v2/up/other/");
    s.get(&foreign)
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");

    // A completed session is gone.
    s.put(&with_query(&loc, "digest", &d))
        .body(b"x".to_vec())
        .send()
        .await
        .expect(201);
    s.get(&loc)
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    s.patch(&loc)
        .body(b"y".to_vec())
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn upload_digest_errors() {
    let s = Server::start().await;
    let blob = b"the real content".to_vec();
    let wrong = sha256(b"something else");
    let path = format!("/v2/dig/app/blobs/{wrong}");
    // The blob with `?digest=`: in the closing PUT of the session at `loc`,
    // or in a monolithic POST.
    let put = |loc: &str, digest: &str| {
        s.put(&with_query(loc, "digest", digest))
            .body(blob.clone())
            .send()
    };
    let post = |digest: &str| {
        s.post(&format!("/v2/dig/app/blobs/uploads/?digest={digest}"))
            .body(blob.clone())
            .send()
    };

    // Mismatch on the closing PUT; nothing becomes readable.
    let loc = s.start_upload("dig/app").await;
    put(&loc, &wrong).await.expect_error(400, "DIGEST_INVALID");
    s.get(&path).send().await.expect_error(404, "BLOB_UNKNOWN");

    // Mismatch on a monolithic POST.
    post(&wrong).await.expect_error(400, "DIGEST_INVALID");
    s.get(&path).send().await.expect_error(404, "BLOB_UNKNOWN");

    // The closing PUT without ?digest=.
    let loc = s.start_upload("dig/app").await;
    s.put(&loc)
        .body(blob.clone())
        .send()
        .await
        .expect_error(400, "DIGEST_INVALID");

    // Malformed or unsupported digests.
    for bad in [
        "sha256:xyz",
        "sha256:",
        "notadigest",
        "sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "",
    ] {
        let loc = s.start_upload("dig/app").await;
        put(&loc, bad).await.expect_error(400, "DIGEST_INVALID");
        post(bad).await.expect_error(400, "DIGEST_INVALID");
    }
}

#[tokio::test]
async fn sha512_blobs() {
    let s = Server::start().await;
    let blob = data(5000, 9);
    let d = sha512(&blob);

    let r = s
        .post(&format!("/v2/sha/app/blobs/uploads/?digest={d}"))
        .body(blob.clone())
        .send()
        .await;
    r.expect(201)
        .expect_header("location", &format!("/v2/sha/app/blobs/{d}"))
        .expect_header("docker-content-digest", &d);
    let r = s.get(&format!("/v2/sha/app/blobs/{d}")).send().await;
    r.expect(200).expect_header("docker-content-digest", &d);
    assert_eq!(r.body, blob);
    s.head(&format!("/v2/sha/app/blobs/{d}"))
        .send()
        .await
        .expect(200)
        .expect_header("content-length", "5000");

    // Chunked, into another repository.
    let loc = s.start_upload("sha/chunked").await;
    let r = s
        .patch(&loc)
        .header("content-range", "0-2999")
        .body(blob[..3000].to_vec())
        .send()
        .await;
    r.expect(202);
    let r = s
        .put(&with_query(&r.location(), "digest", &d))
        .header("content-range", "3000-4999")
        .body(blob[3000..].to_vec())
        .send()
        .await;
    r.expect(201).expect_header("docker-content-digest", &d);
    assert_eq!(
        s.get(&format!("/v2/sha/chunked/blobs/{d}"))
            .send()
            .await
            .expect(200)
            .body,
        blob
    );

    // A sha512 mismatch.
    let loc = s.start_upload("sha/app").await;
    s.put(&with_query(&loc, "digest", &sha512(b"other")))
        .body(blob.clone())
        .send()
        .await
        .expect_error(400, "DIGEST_INVALID");
}

#[tokio::test]
async fn content_range_and_length_mismatch_is_size_invalid() {
    let s = Server::start().await;
    let loc = s.start_upload("size/app").await;
    s.patch(&loc)
        .header("content-range", "0-9")
        .body(b"12345".to_vec())
        .send()
        .await
        .expect_error(400, "SIZE_INVALID");
    // Nothing was stored; a correct chunk still works.
    s.expect_upload_range(&loc, "0-0").await;
    s.patch(&loc)
        .header("content-range", "0-4")
        .body(b"12345".to_vec())
        .send()
        .await
        .expect(202)
        .expect_header("range", "0-4");
}

#[tokio::test]
async fn large_blob_in_chunks_round_trips() {
    let s = Server::start().await;
    let blob = data(4 * MIB + 12_345, 10);
    let d = sha256(&blob);

    // PATCHes of 1 MiB with Content-Range; the tail in the closing PUT.
    let mut loc = s.start_upload("big/app").await;
    let mut offset = 0;
    while blob.len() - offset > MIB {
        let end = offset + MIB;
        let r = s
            .patch(&loc)
            .header("content-type", "application/octet-stream")
            .header("content-range", &format!("{offset}-{}", end - 1))
            .body(blob[offset..end].to_vec())
            .send()
            .await;
        r.expect(202)
            .expect_header("range", &format!("0-{}", end - 1));
        loc = r.location();
        offset = end;
    }
    let r = s
        .put(&with_query(&loc, "digest", &d))
        .header("content-range", &format!("{offset}-{}", blob.len() - 1))
        .body(blob[offset..].to_vec())
        .send()
        .await;
    r.expect(201).expect_header("docker-content-digest", &d);

    let path = format!("/v2/big/app/blobs/{d}");
    let r = s.get(&path).send().await;
    r.expect(200)
        .expect_header("content-length", &blob.len().to_string());
    assert!(r.body == blob, "4 MiB blob differs after the round trip");
    // A range across a chunk boundary.
    let r = s
        .get(&path)
        .header("range", &format!("bytes={}-{}", MIB - 10, MIB + 9))
        .send()
        .await;
    r.expect(206);
    assert_eq!(r.body, blob[MIB - 10..MIB + 10]);

    // The same blob streamed in one chunked PATCH, into another repository.
    let loc = s.start_upload("big/streamed").await;
    let r = s
        .patch(&loc)
        .chunked(blob.chunks(256 * 1024).map(<[u8]>::to_vec).collect())
        .send()
        .await;
    r.expect(202)
        .expect_header("range", &format!("0-{}", blob.len() - 1));
    s.put(&with_query(&r.location(), "digest", &d))
        .send()
        .await
        .expect(201);
    let r = s.get(&format!("/v2/big/streamed/blobs/{d}")).send().await;
    r.expect(200);
    assert!(r.body == blob, "streamed 4 MiB blob differs");
}

// ---------------------------------------------------------------------------
// Cross-repository mount
// ---------------------------------------------------------------------------

#[tokio::test]
async fn mount_from_a_repository_that_has_the_blob() {
    let s = Server::start().await;
    let blob = data(1234, 11);
    let d = s.push_blob("src/app", &blob).await;
    let r = s
        .post(&format!(
            "/v2/dst/app/blobs/uploads/?mount={d}&from=src/app"
        ))
        .send()
        .await;
    r.expect(201)
        .expect_header("location", &format!("/v2/dst/app/blobs/{d}"))
        .expect_header("docker-content-digest", &d);
    let r = s.get(&r.location()).send().await;
    r.expect(200);
    assert_eq!(r.body, blob);
    // The source still has it.
    s.head(&format!("/v2/src/app/blobs/{d}"))
        .send()
        .await
        .expect(200);
}

#[tokio::test]
async fn mount_falls_back_to_an_upload_session() {
    let s = Server::start().await;
    let blob = data(600, 12);
    let d = s.push_blob("src/app", &blob).await;
    let missing = sha256(b"not in src/app");
    for query in [
        format!("mount={missing}&from=src/app"),
        format!("mount={d}&from=no/such/repo"),
        format!("mount={d}&from=Src/App"),
        format!("mount={d}&from=src/../src/app"),
        format!("mount={d}&from="),
        "mount=sha256:zz&from=src/app".to_string(),
        "mount=garbage&from=src/app".to_string(),
    ] {
        let r = s
            .post(&format!("/v2/dst/app/blobs/uploads/?{query}"))
            .send()
            .await;
        r.expect(202);
        let loc = r.location();
        assert!(
            loc.starts_with("/v2/dst/app/blobs/uploads/"),
            "{query}: Location {loc}"
        );
        assert!(r.header("docker-upload-uuid").is_some(), "{query}");
    }
    // The fallback session is a normal one: finish it with the blob.
    let r = s
        .post(&format!(
            "/v2/dst/app/blobs/uploads/?mount={missing}&from=src/app"
        ))
        .send()
        .await;
    r.expect(202);
    s.put(&with_query(&r.location(), "digest", &d))
        .body(blob.clone())
        .send()
        .await
        .expect(201);
    assert_eq!(
        s.get(&format!("/v2/dst/app/blobs/{d}"))
            .send()
            .await
            .expect(200)
            .body,
        blob
    );
}

// ---------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------

/// PUT / GET / HEAD / DELETE of one manifest by tag and by digest.
async fn check_manifest_lifecycle(s: &Server, repo: &str, media_type: &str, bytes: &[u8]) {
    let d = sha256(bytes);
    let len = bytes.len().to_string();

    let r = s.put_manifest(repo, "v1", media_type, bytes).await;
    r.expect(201)
        .expect_header("location", &format!("/v2/{repo}/manifests/{d}"))
        .expect_header("docker-content-digest", &d);
    let location = r.location();

    for reference in ["v1", d.as_str()] {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let r = s.get(&path).header("accept", media_type).send().await;
        r.expect(200)
            .expect_header("content-type", media_type)
            .expect_header("docker-content-digest", &d)
            .expect_header("content-length", &len);
        assert!(r.body == bytes, "{path}: stored bytes differ");
        let r = s.head(&path).header("accept", media_type).send().await;
        r.expect(200)
            .expect_header("content-type", media_type)
            .expect_header("docker-content-digest", &d)
            .expect_header("content-length", &len);
        assert!(r.body.is_empty());
    }
    assert!(s.get(&location).send().await.expect(200).body == bytes);

    // PUT by digest.
    let r = s.put_manifest(repo, &d, media_type, bytes).await;
    r.expect(201)
        .expect_header("location", &format!("/v2/{repo}/manifests/{d}"))
        .expect_header("docker-content-digest", &d);

    // DELETE by tag removes only the tag.
    let tag_path = format!("/v2/{repo}/manifests/v1");
    let digest_path = format!("/v2/{repo}/manifests/{d}");
    s.delete(&tag_path).send().await.expect(202);
    s.get(&tag_path)
        .send()
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    s.head(&tag_path).send().await.expect_head_error(404);
    s.get(&digest_path).send().await.expect(200);
    assert!(!s.tags(repo).await.contains(&"v1".to_string()));

    // DELETE by digest removes the manifest and every tag on it.
    s.push_manifest(repo, "v1", media_type, bytes).await;
    s.push_manifest(repo, "v2", media_type, bytes).await;
    assert_eq!(s.tags(repo).await, ["v1", "v2"]);
    s.delete(&digest_path).send().await.expect(202);
    s.get(&digest_path)
        .send()
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    s.head(&digest_path).send().await.expect_head_error(404);
    for tag in ["v1", "v2"] {
        s.get(&format!("/v2/{repo}/manifests/{tag}"))
            .send()
            .await
            .expect_error(404, "MANIFEST_UNKNOWN");
    }
    assert_eq!(s.tags(repo).await, Vec::<String>::new());
    s.delete(&digest_path)
        .send()
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

/// Pushes two platform images of `image_type`; returns the bytes of an
/// index or list (`index_type`) over them, not pushed.
async fn push_platform_images(
    s: &Server,
    repo: &str,
    image_type: &str,
    index_type: &str,
) -> Vec<u8> {
    let amd64 = s.push_image(repo, "", image_type, 20).await;
    let armv6 = s.push_image(repo, "", image_type, 21).await;
    to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": [
            {
                "mediaType": image_type,
                "digest": amd64.digest,
                "size": amd64.bytes.len(),
                "platform": { "architecture": "amd64", "os": "linux" }
            },
            {
                "mediaType": image_type,
                "digest": armv6.digest,
                "size": armv6.bytes.len(),
                "platform": { "architecture": "arm", "os": "linux", "variant": "v6" }
            }
        ],
    }))
}

#[tokio::test]
async fn docker_schema2_manifest_lifecycle() {
    let s = Server::start().await;
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = data(4000, 13);
    s.push_blob("docker/app", config).await;
    s.push_blob("docker/app", &layer).await;
    // Hand-formatted: the registry must return these exact bytes.
    let bytes = format!(
        "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"{DOCKER_MANIFEST}\",\n   \"config\": {{\"mediaType\": \"{DOCKER_CONFIG}\", \"size\": {}, \"digest\": \"{}\"}},\n   \"layers\": [\n      {{\"mediaType\": \"{DOCKER_LAYER}\", \"size\": {}, \"digest\": \"{}\"}}\n   ]\n}}",
        config.len(),
        sha256(config),
        layer.len(),
        sha256(&layer)
    );
    check_manifest_lifecycle(&s, "docker/app", DOCKER_MANIFEST, bytes.as_bytes()).await;
}

#[tokio::test]
async fn docker_manifest_list_lifecycle() {
    let s = Server::start().await;
    let bytes = push_platform_images(&s, "docker/multi", DOCKER_MANIFEST, DOCKER_LIST).await;
    check_manifest_lifecycle(&s, "docker/multi", DOCKER_LIST, &bytes).await;
}

#[tokio::test]
async fn oci_image_manifest_lifecycle() {
    let s = Server::start().await;
    let config = to_bytes(&json!({"architecture": "arm64", "os": "linux"}));
    let layers = [data(100, 14), data(200, 15)];
    s.push_blob("oci/app", &config).await;
    for l in &layers {
        s.push_blob("oci/app", l).await;
    }
    let bytes = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &config),
        "layers": [desc(OCI_LAYER, &layers[0]), desc(OCI_LAYER, &layers[1])],
        "annotations": { "org.opencontainers.image.title": "ünïcødé ✓" },
    }));
    check_manifest_lifecycle(&s, "oci/app", OCI_MANIFEST, &bytes).await;
}

#[tokio::test]
async fn oci_image_index_lifecycle() {
    let s = Server::start().await;
    let bytes = push_platform_images(&s, "oci/multi", OCI_MANIFEST, OCI_INDEX).await;
    check_manifest_lifecycle(&s, "oci/multi", OCI_INDEX, &bytes).await;
}

#[tokio::test]
async fn oci_artifact_with_empty_config_lifecycle() {
    let s = Server::start().await;
    assert_eq!(sha256(b"{}"), EMPTY_DIGEST);
    s.push_blob("oci/artifact", b"{}").await;
    let payload = br#"{"spdxVersion":"SPDX-2.3"}"#;
    s.push_blob("oci/artifact", payload).await;
    let bytes = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "e30=" },
        "layers": [desc("application/spdx+json", payload)],
        "annotations": { "org.opencontainers.image.created": "2024-01-01T00:00:00Z" },
    }));
    check_manifest_lifecycle(&s, "oci/artifact", OCI_MANIFEST, &bytes).await;
}

#[tokio::test]
async fn manifest_without_media_type_field() {
    // `mediaType` is only a SHOULD in the image spec; such manifests are
    // served with the type they were pushed as.
    let s = Server::start().await;
    let child = s.push_image("nomt/app", "", OCI_MANIFEST, 22).await;
    let index = to_bytes(&json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": child.digest, "size": child.bytes.len() }],
    }));
    s.push_manifest("nomt/app", "idx", OCI_INDEX, &index).await;
    let r = s.get("/v2/nomt/app/manifests/idx").send().await;
    r.expect(200).expect_header("content-type", OCI_INDEX);
    assert_eq!(r.body, index);

    s.push_blob("nomt/app", b"{}").await;
    let image = to_bytes(&json!({
        "schemaVersion": 2,
        "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
    }));
    s.push_manifest("nomt/app", "img", OCI_MANIFEST, &image)
        .await;
    s.get("/v2/nomt/app/manifests/img")
        .send()
        .await
        .expect(200)
        .expect_header("content-type", OCI_MANIFEST);
}

#[tokio::test]
async fn content_type_parameters_are_ignored() {
    // "The registry SHOULD ignore parameters on the Content-Type header."
    let s = Server::start().await;
    s.push_blob("ctp/app", b"{}").await;
    let m = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
    }));
    s.push_manifest(
        "ctp/app",
        "v1",
        &format!("{OCI_MANIFEST}; charset=utf-8"),
        &m,
    )
    .await;
    s.get("/v2/ctp/app/manifests/v1")
        .send()
        .await
        .expect(200)
        .expect_header("content-type", OCI_MANIFEST);
}

#[tokio::test]
async fn retagging_moves_the_tag() {
    let s = Server::start().await;
    let one = s.push_image("retag/app", "latest", OCI_MANIFEST, 23).await;
    let two = s.push_image("retag/app", "latest", OCI_MANIFEST, 24).await;
    assert_ne!(one.digest, two.digest);
    let r = s.get("/v2/retag/app/manifests/latest").send().await;
    r.expect(200)
        .expect_header("docker-content-digest", &two.digest);
    // The first manifest is still there by digest.
    s.get(&format!("/v2/retag/app/manifests/{}", one.digest))
        .send()
        .await
        .expect(200);
    assert_eq!(s.tags("retag/app").await, ["latest"]);
}

#[tokio::test]
async fn docker_foreign_layers_need_not_be_pushed() {
    // Windows base images reference layers served from elsewhere.
    let s = Server::start().await;
    let config = br#"{"architecture":"amd64","os":"windows"}"#;
    s.push_blob("win/app", config).await;
    let bytes = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": desc(DOCKER_CONFIG, config),
        "layers": [{
            "mediaType": DOCKER_FOREIGN_LAYER,
            "digest": sha256(b"windows base layer"),
            "size": 123_456_789,
            "urls": ["https://mcr.microsoft.com/v2/windows/blobs/x"]
        }],
    }));
    s.push_manifest("win/app", "ltsc", DOCKER_MANIFEST, &bytes)
        .await;
}

#[tokio::test]
async fn manifest_referencing_missing_content_is_blob_unknown() {
    let s = Server::start().await;
    let config = to_bytes(&json!({"os": "linux"}));
    let layer = data(300, 25);
    s.push_blob("miss/app", &config).await;

    // Missing layer.
    let m = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &config),
        "layers": [desc(OCI_LAYER, &layer)],
    }));
    s.put_manifest("miss/app", "v1", OCI_MANIFEST, &m)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");

    // Missing config (Docker schema2).
    s.push_blob("miss/app", &layer).await;
    let m = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": desc(DOCKER_CONFIG, b"{\"never\":\"pushed\"}"),
        "layers": [desc(DOCKER_LAYER, &layer)],
    }));
    s.put_manifest("miss/app", "v1", DOCKER_MANIFEST, &m)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");

    // Blobs that exist only in another repository.
    let m = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &config),
        "layers": [desc(OCI_LAYER, &layer)],
    }));
    s.put_manifest("miss/other", "v1", OCI_MANIFEST, &m)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    s.push_manifest("miss/app", "v1", OCI_MANIFEST, &m).await;

    // Index and list children that are missing (or in another repository).
    for (media_type, child_type) in [(OCI_INDEX, OCI_MANIFEST), (DOCKER_LIST, DOCKER_MANIFEST)] {
        for (repo, child) in [
            ("miss/app", sha256(b"no such manifest")),
            ("miss/other", sha256(&m)),
        ] {
            let index = to_bytes(&json!({
                "schemaVersion": 2, "mediaType": media_type,
                "manifests": [{ "mediaType": child_type, "digest": child, "size": 100 }],
            }));
            s.put_manifest(repo, "multi", media_type, &index)
                .await
                .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
        }
    }
    // Nothing was tagged by the failed pushes.
    assert_eq!(s.tags("miss/app").await, ["v1"]);
}

#[tokio::test]
async fn invalid_manifests_are_manifest_invalid() {
    let s = Server::start().await;
    s.push_blob("bad/app", b"{}").await;
    let schema1 = json!({
        "schemaVersion": 1,
        "name": "bad/app",
        "tag": "v1",
        "architecture": "amd64",
        "fsLayers": [{ "blobSum": EMPTY_DIGEST }],
        "history": [{ "v1Compatibility": "{}" }],
        "signatures": [{ "header": {}, "signature": "x", "protected": "y" }]
    });
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (OCI_MANIFEST, b"this is not json".to_vec()),
        (OCI_MANIFEST, b"{\"schemaVersion\": 2,".to_vec()),
        (OCI_MANIFEST, Vec::new()),
        (DOCKER_SCHEMA1_SIGNED, to_bytes(&schema1)),
        (
            "application/vnd.docker.distribution.manifest.v1+json",
            to_bytes(&json!({"schemaVersion": 1, "name": "bad/app", "fsLayers": []})),
        ),
    ];
    for (ct, body) in cases {
        s.put_manifest("bad/app", "v1", ct, &body)
            .await
            .expect_error(400, "MANIFEST_INVALID");
    }
    s.get("/v2/bad/app/manifests/v1")
        .send()
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifest_digest_reference_mismatch_is_digest_invalid() {
    let s = Server::start().await;
    s.push_blob("mis/app", b"{}").await;
    let m = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
    }));
    let other = sha256(b"different bytes");
    s.put_manifest("mis/app", &other, OCI_MANIFEST, &m)
        .await
        .expect_error(400, "DIGEST_INVALID");
    s.get(&format!("/v2/mis/app/manifests/{other}"))
        .send()
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifest_over_4_mib_is_413() {
    let s = Server::start().await;
    // With Content-Length: refused from the header alone.
    let r = s
        .raw(
            &format!(
                "PUT /v2/large/app/manifests/v1 HTTP/1.1\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {}\r\n",
                MANIFEST_LIMIT + 1
            ),
            RawBody::None,
        )
        .await;
    r.expect_error(413, "SIZE_INVALID");

    // With a chunked body of unknown length.
    let r = s
        .raw(
            &format!(
                "PUT /v2/large/app/manifests/v1 HTTP/1.1\r\nContent-Type: {OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\n"
            ),
            RawBody::Chunked {
                chunk: vec![b' '; 64 * 1024],
                count: MANIFEST_LIMIT / (64 * 1024) + 1,
            },
        )
        .await;
    r.expect_error(413, "SIZE_INVALID");
    s.get("/v2/").send().await.expect(200);
}

#[tokio::test]
async fn manifest_of_exactly_4_mib_is_accepted() {
    let s = Server::start().await;
    s.push_blob("edge/app", b"{}").await;
    let doc = |pad: usize| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2 },
            "layers": [],
            "annotations": { "padding": "a".repeat(pad) },
        }))
        .unwrap()
    };
    let bytes = doc(MANIFEST_LIMIT - doc(0).len());
    assert_eq!(bytes.len(), MANIFEST_LIMIT);
    s.push_manifest("edge/app", "big", OCI_MANIFEST, &bytes)
        .await;
    let r = s.get("/v2/edge/app/manifests/big").send().await;
    r.expect(200);
    assert!(r.body == bytes);
}

#[tokio::test]
async fn invalid_tags_are_manifest_unknown() {
    let s = Server::start().await;
    s.push_blob("tag/app", b"{}").await;
    let m = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
    }));
    let long = "a".repeat(129);
    // The spec's endpoint table lists only 404 here; Distribution's router
    // answers 404 for every method (the route does not match).
    for tag in [
        "-bad",
        ".bad",
        ".INVALID_MANIFEST_NAME",
        long.as_str(),
        "a%2Fb",
        "t%C3%A4g",
        "a%20b",
    ] {
        let path = format!("/v2/tag/app/manifests/{tag}");
        s.put_manifest("tag/app", tag, OCI_MANIFEST, &m)
            .await
            .expect_error(404, "MANIFEST_UNKNOWN");
        s.get(&path)
            .send()
            .await
            .expect_error(404, "MANIFEST_UNKNOWN");
        s.head(&path).send().await.expect_head_error(404);
        s.delete(&path)
            .send()
            .await
            .expect_error(404, "MANIFEST_UNKNOWN");
    }
    // The longest valid tag is fine.
    let longest = "a".repeat(128);
    s.push_manifest("tag/app", &longest, OCI_MANIFEST, &m).await;
    s.push_manifest("tag/app", "_v1.0-rc.1_X", OCI_MANIFEST, &m)
        .await;
}

#[tokio::test]
async fn unknown_manifests() {
    let s = Server::start().await;
    s.push_image("known/app", "v1", OCI_MANIFEST, 26).await;
    let unknown_digest = sha256(b"no such manifest");
    for reference in ["nope", unknown_digest.as_str()] {
        let path = format!("/v2/known/app/manifests/{reference}");
        s.expect_unknown(&path, "MANIFEST_UNKNOWN").await;
    }
    for reference in ["latest", unknown_digest.as_str()] {
        let path = format!("/v2/unknown/app/manifests/{reference}");
        s.get(&path).send().await.expect_error(404, "NAME_UNKNOWN");
        s.head(&path).send().await.expect_head_error(404);
        let r = s.delete(&path).send().await;
        r.expect(404);
        let code = r.error_code().unwrap();
        assert!(
            code == "NAME_UNKNOWN" || code == "MANIFEST_UNKNOWN",
            "DELETE {path}: {code}"
        );
    }
}

// ---------------------------------------------------------------------------
// Subject and referrers
// ---------------------------------------------------------------------------

/// An artifact manifest referring to `subject`.
fn artifact(subject: &Value, artifact_type: &str, payload: &[u8], annotations: Value) -> Vec<u8> {
    to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [desc("application/octet-stream", payload)],
        "subject": subject,
        "annotations": annotations,
    }))
}

#[tokio::test]
async fn manifest_with_subject_answers_oci_subject() {
    let s = Server::start().await;
    s.push_blob("subj/app", b"{}").await;
    s.push_blob("subj/app", b"sig").await;
    // The subject need not exist.
    let subject = json!({ "mediaType": OCI_MANIFEST, "digest": sha256(b"absent"), "size": 6 });
    let bytes = artifact(&subject, "application/vnd.example.sig", b"sig", json!({}));
    let d = sha256(&bytes);
    let r = s.put_manifest("subj/app", &d, OCI_MANIFEST, &bytes).await;
    r.expect(201)
        .expect_header("oci-subject", &sha256(b"absent"))
        .expect_header("docker-content-digest", &d);
    // Without a subject, no OCI-Subject.
    let plain = s.push_image("subj/app", "v1", OCI_MANIFEST, 27).await;
    s.put_manifest("subj/app", "v1", OCI_MANIFEST, &plain.bytes)
        .await
        .expect(201)
        .expect_no_header("oci-subject");
}

#[tokio::test]
async fn referrers_api() {
    let s = Server::start().await;
    let repo = "ref/app";
    let image = s.push_image(repo, "v1", OCI_MANIFEST, 28).await;
    let subject =
        json!({ "mediaType": OCI_MANIFEST, "digest": image.digest, "size": image.bytes.len() });
    s.push_blob(repo, b"{}").await;
    s.push_blob(repo, b"sbom").await;
    s.push_blob(repo, b"signature").await;

    let sbom_ann = json!({
        "org.opencontainers.image.created": "2024-01-01T14:42:55Z",
        "org.example.sbom.format": "json"
    });
    let sbom = artifact(
        &subject,
        "application/vnd.example.sbom.v1",
        b"sbom",
        sbom_ann.clone(),
    );
    let sig_ann = json!({ "org.example.signature.fingerprint": "abcd" });
    let sig = artifact(
        &subject,
        "application/vnd.example.signature.v1",
        b"signature",
        sig_ann.clone(),
    );
    // No artifactType: the config's media type stands in for it.
    let config_type = "application/vnd.example.config.v1+json";
    let config = br#"{"kind":"attestation"}"#;
    s.push_blob(repo, config).await;
    let attestation = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(config_type, config),
        "layers": [],
        "subject": subject,
    }));
    // An index referrer without artifactType: no artifactType in its descriptor.
    let index_ann = json!({ "org.opencontainers.image.created": "2023-01-01T07:21:33Z" });
    let index = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [],
        "subject": subject,
        "annotations": index_ann,
    }));
    for (bytes, media_type) in [
        (&sbom, OCI_MANIFEST),
        (&sig, OCI_MANIFEST),
        (&attestation, OCI_MANIFEST),
        (&index, OCI_INDEX),
    ] {
        s.put_manifest(repo, &sha256(bytes), media_type, bytes)
            .await
            .expect(201)
            .expect_header("oci-subject", &image.digest);
    }

    let path = format!("/v2/{repo}/referrers/{}", image.digest);
    let r = s.get(&path).send().await;
    r.expect(200)
        .expect_header("content-type", OCI_INDEX)
        .expect_no_header("oci-filters-applied");
    let v = r.json();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], OCI_INDEX);
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 4, "{v}");
    let find = |bytes: &[u8]| -> Value {
        let d = sha256(bytes);
        list.iter()
            .find(|m| m["digest"] == d.as_str())
            .unwrap_or_else(|| panic!("{d} not among the referrers: {v}"))
            .clone()
    };
    let check = |m: Value,
                 media_type: &str,
                 bytes: &[u8],
                 artifact_type: Option<&str>,
                 ann: Option<&Value>| {
        assert_eq!(m["mediaType"], media_type, "{m}");
        assert_eq!(m["size"], bytes.len(), "{m}");
        match artifact_type {
            Some(t) => assert_eq!(m["artifactType"], t, "{m}"),
            None => assert!(m.get("artifactType").is_none(), "{m}"),
        }
        match ann {
            Some(a) => assert_eq!(&m["annotations"], a, "{m}"),
            None => assert!(
                m.get("annotations")
                    .is_none_or(|a| a.as_object().is_some_and(|o| o.is_empty())),
                "{m}"
            ),
        }
    };
    check(
        find(&sbom),
        OCI_MANIFEST,
        &sbom,
        Some("application/vnd.example.sbom.v1"),
        Some(&sbom_ann),
    );
    check(
        find(&sig),
        OCI_MANIFEST,
        &sig,
        Some("application/vnd.example.signature.v1"),
        Some(&sig_ann),
    );
    check(
        find(&attestation),
        OCI_MANIFEST,
        &attestation,
        Some(config_type),
        None,
    );
    check(find(&index), OCI_INDEX, &index, None, Some(&index_ann));

    // Filtering by artifactType (`+` percent-encoded, as clients do).
    for (filter, expected) in [
        ("application/vnd.example.sbom.v1", vec![sha256(&sbom)]),
        (
            "application/vnd.example.config.v1%2Bjson",
            vec![sha256(&attestation)],
        ),
        ("application/vnd.example.unknown", vec![]),
    ] {
        let r = s.get(&format!("{path}?artifactType={filter}")).send().await;
        r.expect(200)
            .expect_header("content-type", OCI_INDEX)
            .expect_header("oci-filters-applied", "artifactType");
        let got: Vec<String> = r.json()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, expected, "filter {filter}");
    }

    // A manifest without referrers: an empty index, not a 404.
    let r = s
        .get(&format!("/v2/{repo}/referrers/{}", sha256(&sbom)))
        .send()
        .await;
    r.expect(200).expect_header("content-type", OCI_INDEX);
    assert_eq!(r.json()["manifests"], json!([]));

    // Deleting a referrer removes it from the list.
    s.delete(&format!("/v2/{repo}/manifests/{}", sha256(&sbom)))
        .send()
        .await
        .expect(202);
    let v = s.get(&path).send().await.expect(200).json();
    let digests: Vec<&str> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests.len(), 3, "{v}");
    assert!(!digests.contains(&sha256(&sbom).as_str()), "{v}");

    // Referrers of a subject that was never pushed.
    let absent = json!({ "mediaType": OCI_MANIFEST, "digest": sha256(b"later"), "size": 5 });
    let early = artifact(
        &absent,
        "application/vnd.example.sbom.v1",
        b"sbom",
        json!({}),
    );
    s.push_manifest(repo, &sha256(&early), OCI_MANIFEST, &early)
        .await;
    let v = s
        .get(&format!("/v2/{repo}/referrers/{}", sha256(b"later")))
        .send()
        .await
        .expect(200)
        .json();
    assert_eq!(v["manifests"][0]["digest"], sha256(&early), "{v}");

    // A malformed digest is 400.
    s.get(&format!("/v2/{repo}/referrers/sha256:nothex"))
        .send()
        .await
        .expect_error(400, "DIGEST_INVALID");
}

// ---------------------------------------------------------------------------
// Tags
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tags_list_sorted_and_paginated() {
    let s = Server::start().await;
    let repo = "tags/app";
    let image = s.push_image(repo, "v1", OCI_MANIFEST, 29).await;
    for tag in ["latest", "v2", "A1", "v10", "1.0"] {
        s.push_manifest(repo, tag, OCI_MANIFEST, &image.bytes).await;
    }
    let all = ["1.0", "A1", "latest", "v1", "v10", "v2"];
    let r = s.get(&format!("/v2/{repo}/tags/list")).send().await;
    r.expect(200)
        .expect_header("content-type", "application/json")
        .expect_no_header("link");
    assert_eq!(r.json(), json!({ "name": repo, "tags": all }));

    // n=2: three pages, a Link on all but the last.
    let r = s.get(&format!("/v2/{repo}/tags/list?n=2")).send().await;
    r.expect(200).expect_header(
        "link",
        &format!("</v2/{repo}/tags/list?n=2&last=A1>; rel=\"next\""),
    );
    assert_eq!(r.json()["tags"], json!(["1.0", "A1"]));
    let got = pages(&s, &format!("/v2/{repo}/tags/list?n=2"), "tags").await;
    assert_eq!(
        got,
        [vec!["1.0", "A1"], vec!["latest", "v1"], vec!["v10", "v2"]]
    );

    let got = pages(&s, &format!("/v2/{repo}/tags/list?n=4"), "tags").await;
    assert_eq!(got, [all[..4].to_vec(), all[4..].to_vec()]);

    // `last` alone, `last` with n, n beyond the end.
    let r = s
        .get(&format!("/v2/{repo}/tags/list?last=latest"))
        .send()
        .await;
    r.expect(200).expect_no_header("link");
    assert_eq!(r.json()["tags"], json!(["v1", "v10", "v2"]));
    let r = s
        .get(&format!("/v2/{repo}/tags/list?n=1&last=v1"))
        .send()
        .await;
    assert_eq!(r.expect(200).json()["tags"], json!(["v10"]));
    let r = s.get(&format!("/v2/{repo}/tags/list?n=100")).send().await;
    r.expect(200).expect_no_header("link");
    assert_eq!(r.json()["tags"], json!(all));

    // n=0: an empty list and no Link.
    let r = s.get(&format!("/v2/{repo}/tags/list?n=0")).send().await;
    r.expect(200).expect_no_header("link");
    assert_eq!(r.json()["tags"], json!([]));
}

#[tokio::test]
async fn tags_list_errors_and_empty_repositories() {
    let s = Server::start().await;
    s.get("/v2/no/such/repo/tags/list")
        .send()
        .await
        .expect_error(404, "NAME_UNKNOWN");
    // A repository with an untagged manifest has an empty list.
    s.push_image("untagged/app", "", OCI_MANIFEST, 30).await;
    let r = s.get("/v2/untagged/app/tags/list").send().await;
    assert_eq!(
        r.expect(200).json(),
        json!({ "name": "untagged/app", "tags": [] })
    );
    for n in ["abc", "-1", "1.5", "99999999999999999999999999"] {
        s.get(&format!("/v2/untagged/app/tags/list?n={n}"))
            .send()
            .await
            .expect_error(400, "PAGINATION_NUMBER_INVALID");
    }
}

// ---------------------------------------------------------------------------
// Catalog
// ---------------------------------------------------------------------------

#[tokio::test]
async fn catalog_lists_and_paginates_repositories() {
    let s = Server::start().await;
    let r = s.get("/v2/_catalog").send().await;
    assert_eq!(r.expect(200).json(), json!({ "repositories": [] }));

    let repos = [
        "zeta",
        "alpha",
        "devops/monitoring/prometheus",
        "beta/x",
        "devops/app",
    ];
    for (i, repo) in repos.iter().enumerate() {
        s.push_image(repo, "v1", OCI_MANIFEST, 40 + i as u64).await;
    }
    let sorted = [
        "alpha",
        "beta/x",
        "devops/app",
        "devops/monitoring/prometheus",
        "zeta",
    ];
    let r = s.get("/v2/_catalog").send().await;
    r.expect(200).expect_no_header("link");
    assert_eq!(r.json(), json!({ "repositories": sorted }));

    let r = s.get("/v2/_catalog?n=2").send().await;
    let link = r
        .expect(200)
        .header("link")
        .expect("Link on a partial page");
    assert!(
        link.starts_with("</v2/_catalog?")
            && link.ends_with(">; rel=\"next\"")
            && link.contains("n=2"),
        "Link {link}"
    );
    let got = pages(&s, "/v2/_catalog?n=2", "repositories").await;
    assert_eq!(
        got,
        [
            vec!["alpha", "beta/x"],
            vec!["devops/app", "devops/monitoring/prometheus"],
            vec!["zeta"]
        ]
    );
    let r = s.get("/v2/_catalog?n=2&last=devops/app").send().await;
    assert_eq!(
        r.expect(200).json()["repositories"],
        json!(["devops/monitoring/prometheus", "zeta"])
    );
    let r = s.get("/v2/_catalog?n=0").send().await;
    r.expect(200).expect_no_header("link");
    assert_eq!(r.json()["repositories"], json!([]));
    s.get("/v2/_catalog?n=many")
        .send()
        .await
        .expect_error(400, "PAGINATION_NUMBER_INVALID");

    // Multi-level names work on every endpoint.
    assert_eq!(s.tags("devops/monitoring/prometheus").await, ["v1"]);
    s.get("/v2/devops/monitoring/prometheus/manifests/v1")
        .send()
        .await
        .expect(200);
}

// ---------------------------------------------------------------------------
// Names and methods
// ---------------------------------------------------------------------------

#[tokio::test]
async fn invalid_names_are_name_invalid() {
    let s = Server::start().await;
    let long = "a".repeat(256);
    let d = sha256(b"x");
    let paths = [
        "/v2/Upper/tags/list".to_string(),
        "/v2/team/App/manifests/latest".to_string(),
        "/v2/a%2Fb/tags/list".to_string(),
        "/v2/a%2fb/manifests/latest".to_string(),
        "/v2/a//b/tags/list".to_string(),
        "/v2/library//manifests/latest".to_string(),
        "/v2//tags/list".to_string(),
        format!("/v2/{long}/tags/list"),
        "/v2/-a/tags/list".to_string(),
        "/v2/a-/tags/list".to_string(),
        "/v2/a___b/tags/list".to_string(),
        "/v2/a%20b/tags/list".to_string(),
        format!("/v2/UP/blobs/{d}"),
        "/v2/UP/blobs/uploads/".to_string(),
        format!("/v2/UP/referrers/{d}"),
    ];
    for p in &paths {
        s.get(p).send().await.expect_error(400, "NAME_INVALID");
    }
    s.post("/v2/UP/blobs/uploads/")
        .send()
        .await
        .expect_error(400, "NAME_INVALID");
    // `..` and `.` segments, sent as-is (a URL library would resolve them).
    for p in [
        "/v2/team-a/../team-b/tags/list",
        "/v2/a/./b/tags/list",
        "/v2/a/%2e%2e/b/tags/list",
        "/v2/../v2/x/tags/list",
    ] {
        s.raw(&format!("GET {p} HTTP/1.1\r\n"), RawBody::None)
            .await
            .expect_error(400, "NAME_INVALID");
    }
    // A trailing slash after a valid path matches no endpoint.
    s.get("/v2/library/tags/list/")
        .send()
        .await
        .expect_error(404, "UNSUPPORTED");
    // Valid names, 255 characters and multi-level, are only unknown.
    let max = format!("{}/{}", "a".repeat(127), "b".repeat(127));
    for name in [
        max.as_str(),
        "devops/monitoring/prometheus",
        "a.b_c__d---e/f0",
    ] {
        s.get(&format!("/v2/{name}/tags/list"))
            .send()
            .await
            .expect_error(404, "NAME_UNKNOWN");
    }
}

#[tokio::test]
async fn names_may_contain_endpoint_words() {
    let s = Server::start().await;
    for repo in ["tags/list", "blobs/uploads", "manifests/referrers/blobs"] {
        let image = s.push_image(repo, "v1", OCI_MANIFEST, 50).await;
        let r = s.get(&format!("/v2/{repo}/manifests/v1")).send().await;
        assert!(r.expect(200).body == image.bytes);
        assert_eq!(s.tags(repo).await, ["v1"]);
    }
}

#[tokio::test]
async fn method_not_allowed_is_405_unsupported() {
    let s = Server::start().await;
    let d = sha256(b"x");
    let cases = [
        (Method::POST, "/v2/x/tags/list".to_string()),
        (Method::DELETE, "/v2/x/tags/list".to_string()),
        (Method::POST, "/v2/".to_string()),
        (Method::DELETE, "/v2/".to_string()),
        (Method::PUT, "/v2/_catalog".to_string()),
        (Method::PATCH, "/v2/x/manifests/latest".to_string()),
        (Method::POST, "/v2/x/manifests/latest".to_string()),
        (Method::PUT, format!("/v2/x/blobs/{d}")),
        (Method::POST, format!("/v2/x/blobs/{d}")),
        (Method::PUT, "/v2/x/blobs/uploads/".to_string()),
        (Method::DELETE, format!("/v2/x/referrers/{d}")),
        (Method::OPTIONS, "/v2/x/tags/list".to_string()),
        (Method::from_bytes(b"BREW").unwrap(), "/v2/".to_string()),
    ];
    for (m, p) in cases {
        s.request(m, &p)
            .send()
            .await
            .expect_error(405, "UNSUPPORTED");
    }
}

#[tokio::test]
async fn head_is_allowed_wherever_get_is() {
    // RFC 9110 section 9.1: general-purpose servers MUST support HEAD
    // (and section 9.3.2: it answers as GET would, without a body).
    let s = Server::start().await;
    let image = s.push_image("head/app", "v1", OCI_MANIFEST, 70).await;
    for path in [
        "/v2/_catalog".to_string(),
        "/v2/head/app/tags/list".to_string(),
        format!("/v2/head/app/referrers/{}", image.digest),
    ] {
        let get = s.get(&path).send().await;
        get.expect(200);
        let r = s.head(&path).send().await;
        r.expect(200);
        assert!(r.body.is_empty(), "HEAD {path} has a body");
        assert_eq!(
            r.header("content-type"),
            get.header("content-type"),
            "HEAD {path}"
        );
    }
}

#[tokio::test]
async fn method_not_allowed_lists_the_allowed_methods() {
    // RFC 9110 section 15.5.6: a 405 MUST carry an `Allow` header.
    let s = Server::start().await;
    let r = s.post("/v2/x/tags/list").send().await;
    r.expect(405);
    let allow = r
        .header("allow")
        .unwrap_or_else(|| panic!("405 without Allow"));
    assert!(allow.contains("GET"), "Allow: {allow}");
}

// ---------------------------------------------------------------------------
// Location headers
// ---------------------------------------------------------------------------

/// The `Location`s of a small push: upload start, chunk, blob, manifest.
async fn push_locations(s: &Server, headers: &[(&str, &str)]) -> Vec<String> {
    let with = |mut c: Call| {
        for (k, v) in headers {
            c = c.header(k, v);
        }
        c
    };
    let mut out = Vec::new();
    let r = with(s.post("/v2/loc/app/blobs/uploads/")).send().await;
    r.expect(202);
    out.push(r.location());
    let r = with(s.patch(&r.location()))
        .body(b"{}".to_vec())
        .send()
        .await;
    r.expect(202);
    out.push(r.location());
    let r = with(s.put(&with_query(&r.location(), "digest", EMPTY_DIGEST)))
        .send()
        .await;
    r.expect(201);
    out.push(r.location());
    let m = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
    }));
    let r = with(s.put("/v2/loc/app/manifests/v1"))
        .header("content-type", OCI_MANIFEST)
        .body(m)
        .send()
        .await;
    r.expect(201);
    out.push(r.location());
    out
}

const FORWARDED: [(&str, &str); 2] = [
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "registry.example:8443"),
];

#[tokio::test]
async fn location_headers_are_relative_by_default() {
    let s = Server::start().await;
    for headers in [&[][..], &FORWARDED[..]] {
        for loc in push_locations(&s, headers).await {
            assert!(loc.starts_with("/v2/loc/app/"), "Location {loc}");
        }
    }
}

#[tokio::test]
async fn location_headers_follow_trusted_forwarded_headers() {
    let s = Server::start_with(true).await;
    let locs = push_locations(&s, &FORWARDED).await;
    for loc in &locs {
        assert!(
            loc.starts_with("https://registry.example:8443/v2/loc/app/"),
            "Location {loc}"
        );
    }
    assert!(locs[2].ends_with(&format!("/blobs/{EMPTY_DIGEST}")));
    // Without forwarded headers: relative, or absolute on this server.
    let own = format!("http://{}/v2/loc/app/", s.addr);
    for loc in push_locations(&s, &[]).await {
        assert!(
            loc.starts_with("/v2/loc/app/") || loc.starts_with(&own),
            "Location {loc}"
        );
    }
    // A host that is not a host is not used.
    for loc in push_locations(&s, &[("x-forwarded-host", "evil.example/path?x")]).await {
        assert!(!loc.contains("evil"), "Location {loc}");
    }
}

// ---------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------

#[tokio::test]
async fn hostile_inputs_get_4xx_oci_errors_and_the_server_survives() {
    let s = Server::start().await;
    let repo = "h/app";
    let image = s.push_image(repo, "v1", OCI_MANIFEST, 60).await;
    let blob = data(100, 61);
    let blob_path = format!("/v2/{repo}/blobs/{}", s.push_blob(repo, &blob).await);
    let upload = s.start_upload(repo).await;
    let d = sha256(b"x");

    let mut failures = Vec::new();
    let mut check = |r: Resp| {
        if !(400..500).contains(&r.status) {
            failures.push(format!("{}: status {} {}", r.what, r.status, r.text()));
        } else if let Err(e) = r.error_code() {
            failures.push(format!("{}: status {}: {e}", r.what, r.status));
        }
    };

    // Paths.
    let long = "x/".repeat(2000);
    for p in [
        "/v3/",
        "/v2x",
        "/favicon.ico",
        "/v2/_catalog/extra",
        "/v2/h/app",
        "/v2/h/app/tags",
        "/v2/h/app/tags/list/extra",
        "/v2/h/app/manifests",
        "/v2/%00/tags/list",
        "/v2/a%00b/tags/list",
        "/v2/%E2%98%83/tags/list",
        "/v2/h/app/manifests/%E2%98%83",
        "/v2/h/app/manifests/sha256:%E2%98%83",
        "/v2/h/app/manifests/sha256:",
        "/v2/h/app/manifests/:",
        "/v2/h/app/blobs/sha256:zz",
        "/v2/h/app/blobs/",
        "/v2/h/app/blobs/sha256:%2e%2e%2f%2e%2e",
        "/v2/h/app/referrers/nope",
        "/v2/h/app/blobs/uploads/not-a-uuid",
        "/v2/h/app/blobs/uploads/..%2F..%2Fetc",
        "/v2/h/app/blobs/uploads/00000000-0000-0000-0000-00000000000g",
        "/v2/nope/tags/list?last=%E2%98%83",
        "/v2/_catalog?n=abc",
        "/v2/_catalog?n=-1",
        "/v2/_catalog?n=1e3",
        "/v2/_catalog?n=99999999999999999999999999",
        "/v2/h/app/tags/list?n=abc&n=2",
        "/v2/h/app/tags/list?n=%E2%98%83",
    ] {
        check(s.get(p).send().await);
    }
    check(s.get(&format!("/v2/{long}tags/list")).send().await);

    // Methods.
    for (m, p) in [
        (Method::POST, "/v2/"),
        (Method::PUT, "/v2/"),
        (Method::PATCH, "/v2/"),
        (Method::DELETE, "/v2/_catalog"),
        (Method::OPTIONS, "/v2/"),
        (Method::TRACE, "/v2/h/app/manifests/v1"),
        (
            Method::from_bytes(b"PROPFIND").unwrap(),
            "/v2/h/app/tags/list",
        ),
        (Method::POST, "/v2/h/app/tags/list"),
        (Method::GET, "/v2/h/app/blobs/uploads/"),
    ] {
        check(s.request(m, p).send().await);
    }

    // Large headers, within the server's limits.
    let big = "a".repeat(64 * 1024);
    check(
        s.get("/v2/nope/tags/list")
            .header("x-junk", &big)
            .send()
            .await,
    );
    let mut c = s.get("/v2/nope/tags/list");
    for i in 0..60 {
        c = c.header(&format!("x-junk-{i}"), &"b".repeat(1000));
    }
    check(c.send().await);
    check(
        s.get("/v2/nope/manifests/v1")
            .header(
                "accept",
                &format!("{OCI_MANIFEST}, {}", "x/y;q=0.1, ".repeat(2000)),
            )
            .send()
            .await,
    );

    // Unsatisfiable Range headers on a blob that exists: 416.
    for range in ["bytes=-0", "bytes=100-"] {
        check(s.get(&blob_path).header("range", range).send().await);
    }
    // Ranges that do not parse are ignored (RFC 9110): the whole blob.
    for range in [
        "bytes=zz",
        "bytes=5-2",
        "bytes=-",
        "bytes=99999999999999999999999-",
    ] {
        let r = s.get(&blob_path).header("range", range).send().await;
        r.expect(200);
        assert!(r.body == blob, "Range: {range}: the whole blob");
    }

    // Bad Content-Range and digests on an upload session.
    for cr in [
        "garbage",
        "0-",
        "-5",
        "a-b",
        "99999999999999999999-1",
        "5-9",
        "bytes 3-1/5",
        "0-2",
    ] {
        check(
            s.patch(&upload)
                .header("content-range", cr)
                .body(b"12345".to_vec())
                .send()
                .await,
        );
    }
    for digest in ["", "sha256:%E2%98%83", "sha256:..%2F..", "nope"] {
        check(
            s.put(&with_query(&upload, "digest", digest))
                .body(b"x".to_vec())
                .send()
                .await,
        );
        check(
            s.post(&format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
                .body(b"x".to_vec())
                .send()
                .await,
        );
    }
    // Nothing reached the session.
    s.expect_upload_range(&upload, "0-0").await;

    // Manifest bodies: not JSON, the wrong JSON, nested garbage, unicode.
    let deep_array = "[".repeat(100_000);
    let deep_object = "{\"a\":".repeat(50_000);
    let manifests: Vec<(&str, Vec<u8>)> = vec![
        (OCI_MANIFEST, b"".to_vec()),
        (OCI_MANIFEST, b"null".to_vec()),
        (OCI_MANIFEST, b"[]".to_vec()),
        (OCI_MANIFEST, b"\"manifest\"".to_vec()),
        (OCI_MANIFEST, b"{".to_vec()),
        (OCI_MANIFEST, deep_array.into_bytes()),
        (OCI_MANIFEST, deep_object.into_bytes()),
        (OCI_MANIFEST, vec![0xff, 0xfe, 0x00, 0x7b]),
        (OCI_MANIFEST, b"\xef\xbb\xbf{\"schemaVersion\":2}".to_vec()),
        (OCI_MANIFEST, br#"{"schemaVersion":"2"}"#.to_vec()),
        (OCI_MANIFEST, br#"{"schemaVersion":2}"#.to_vec()),
        (OCI_MANIFEST, br#"{"schemaVersion":3,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#.to_vec()),
        ("application/x-unknown", br#"{"schemaVersion":2,"mediaType":"application/x-unknown"}"#.to_vec()),
        (OCI_MANIFEST, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"sha256:zz","size":1}},"layers":[]}}"#).into_bytes()),
        (OCI_MANIFEST, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{d}","size":-1}},"layers":[]}}"#).into_bytes()),
        (OCI_MANIFEST, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{d}","size":1e400}},"layers":[]}}"#).into_bytes()),
        (OCI_MANIFEST, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{d}","size":1}},"layers":"nope"}}"#).into_bytes()),
        (OCI_MANIFEST, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x\u0000","digest":"{d}","size":1}},"layers":[{{"digest":"md5:abc","size":1}}]}}"#).into_bytes()),
        (OCI_MANIFEST, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"☃","digest":"{d}","size":1}},"layers":[],"annotations":{{"ключ":"値 🚀"}}}}"#).into_bytes()),
        (OCI_INDEX, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"digest":"sha256:zz","size":1}}]}}"#).into_bytes()),
        (OCI_INDEX, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":{{}}}}"#).into_bytes()),
        (OCI_INDEX, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"subject":{{"digest":"nope","size":1}}}}"#).into_bytes()),
        // Content-Type contradicting the manifest's mediaType.
        (DOCKER_MANIFEST, image.bytes.clone()),
    ];
    for (ct, body) in manifests {
        check(s.put_manifest(repo, "hostile", ct, &body).await);
    }
    check(
        s.put(&format!("/v2/{repo}/manifests/{}", sha256(b"other")))
            .header("content-type", OCI_MANIFEST)
            .body(image.bytes.clone())
            .send()
            .await,
    );

    // Raw requests a URL library would not send as-is.
    for p in [
        "/v2/h/../h/app/tags/list",
        "/v2/h/app/../../_catalog/tags/list",
        "/v2/./tags/list",
        "/v2/h/app/blobs/uploads/../../../../etc/passwd",
        "/v2/h/app/manifests/..",
        "/v2/%2e%2e/tags/list",
    ] {
        check(s.raw(&format!("GET {p} HTTP/1.1\r\n"), RawBody::None).await);
    }

    assert!(
        failures.is_empty(),
        "answers that are not 4xx OCI errors:\n{}",
        failures.join("\n")
    );

    // Still serving, and nothing was damaged.
    s.get("/v2/").send().await.expect(200);
    let r = s.get(&format!("/v2/{repo}/manifests/v1")).send().await;
    assert!(r.expect(200).body == image.bytes);
    assert_eq!(s.get(&blob_path).send().await.expect(200).body, blob);
    assert_eq!(s.tags(repo).await, ["v1"]);
}

// ---------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------

#[tokio::test]
async fn server_stops_cleanly() {
    let s = Server::start().await;
    s.get("/v2/").send().await.expect(200);
    s.stop().await.expect("run returned an error");
}
