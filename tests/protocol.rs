//! HTTP-level correctness on both protocol versions, against the real
//! server in-process over TLS (built-in CA): HEAD answers carry headers
//! only (checked with real `curl --http2 -I` and the h2 client), the token
//! realm names the port the client dialled, early answers to requests whose
//! body is still on the way leave the connection usable (or close it
//! cleanly), cross-repository mounts work with tokens, and the small
//! points of issue 11 (unparsable `Range`, methods on `/` and `/ca.crt`,
//! IP-address SNI not logged as a warning).
//!
//! Layout: helpers (raw HTTP/1.1 over a socket) -> HEAD -> realm ->
//! keep-alive -> mounts with tokens -> small points.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use common::{add_users, require_tool, Proto, TlsServer, PROTOCOLS};
use reqwest::Method;
use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(20);
const ALICE: (&str, &str) = ("alice", "alice-Secret-1");
const ZERO_DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn basic((user, password): (&str, &str)) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

/// A TLS server with logins (`challenge`: `token` or `basic`) and alice.
async fn auth_server(challenge: &str) -> TlsServer {
    let dir = tempfile::tempdir().expect("temp dir");
    add_users(&dir.path().join("htpasswd"), &[ALICE]);
    TlsServer::start_in(
        dir,
        &format!("auth:\n  htpasswd: htpasswd\n  challenge: {challenge}\n"),
    )
    .await
}

async fn send(
    s: &TlsServer,
    proto: Proto,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> reqwest::Response {
    let mut req = s.client(proto).request(method.clone(), s.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{proto:?} {method} {path}: {e:?}"));
    assert_eq!(r.version(), proto.version(), "{method} {path}: protocol");
    r
}

// ---------------------------------------------------------------------------
// Raw HTTP/1.1 over a socket (plain or TLS)
// ---------------------------------------------------------------------------

/// One parsed HTTP/1.1 response.
#[derive(Debug)]
struct RawResp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawResp {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Reads one `Content-Length`-framed response (bounded in time); `buf`
/// keeps bytes read past it.
async fn read_response<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>, what: &str) -> RawResp {
    let read = async {
        let mut tmp = vec![0u8; 16 * 1024];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("{what}: bad status line in {head:?}"));
                let resp = RawResp {
                    status,
                    head,
                    body: Vec::new(),
                };
                let len: usize = resp
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{what}: no Content-Length in {:?}", resp.head));
                if buf.len() >= end + 4 + len {
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    buf.drain(..end + 4 + len);
                    return RawResp { body, ..resp };
                }
            }
            match s.read(&mut tmp).await {
                Ok(0) => panic!(
                    "{what}: connection closed before a complete response: {:?}",
                    String::from_utf8_lossy(buf)
                ),
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
                Err(e) => panic!("{what}: read failed: {e}"),
            }
        }
    };
    tokio::time::timeout(TIMEOUT, read)
        .await
        .unwrap_or_else(|_| panic!("{what}: no response in time"))
}

/// Reads until the server closes; `Ok` for a clean close (TLS:
/// close_notify), `Err` with the error otherwise.
async fn read_to_close<S: AsyncRead + Unpin>(s: &mut S) -> Result<Vec<u8>, String> {
    let mut rest = Vec::new();
    match tokio::time::timeout(TIMEOUT, s.read_to_end(&mut rest)).await {
        Ok(Ok(_)) => Ok(rest),
        Ok(Err(e)) => Err(format!("{e} ({:?})", e.kind())),
        Err(_) => Err("the server did not close the connection in time".into()),
    }
}

/// Sends a request head, waits so that it arrives as its own write, then
/// the body: the server may answer before it has the body.
async fn send_split<S: AsyncWrite + Unpin>(s: &mut S, head: &str, body: &[u8]) {
    s.write_all(head.as_bytes()).await.expect("write head");
    s.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;
    if !body.is_empty() {
        // The server may already have answered; a failed write shows up
        // in the answer checks below.
        let _ = s.write_all(body).await;
        let _ = s.flush().await;
    }
}

// ---------------------------------------------------------------------------
// HEAD: headers only, on both versions
// ---------------------------------------------------------------------------

/// Paths whose GET answers have a body: success and errors.
fn head_paths() -> Vec<String> {
    vec![
        "/".into(),
        "/ca.crt".into(),
        "/v2/".into(),
        "/v2/team/app/tags/list".into(),
        "/v2/team/app/manifests/latest".into(),
        format!("/v2/team/app/blobs/{ZERO_DIGEST}"),
        "/v2/Bad/tags/list".into(),
        "/v2/no/such/endpoint/x".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_head_gets_headers_only_on_both_versions() {
    let curl = require_tool("curl", "curl");
    for s in [
        TlsServer::start("").await,
        auth_server("token").await,
        auth_server("basic").await,
    ] {
        let ca = s.dir.path().join("certs/ca.crt");
        for proto in PROTOCOLS {
            for path in head_paths() {
                let out = common::run(
                    Command::new(&curl)
                        .args(["-sS", "-I", "--max-time", "20", "--noproxy", "*"])
                        .arg(proto.curl_flag())
                        .arg("--cacert")
                        .arg(&ca)
                        .args(["-w", "%{http_version}"])
                        .arg(s.url(&path)),
                    TIMEOUT,
                );
                let text = common::output_text(&out);
                assert!(
                    out.status.success(),
                    "curl {} -I {path}: {:?}\n{text}",
                    proto.curl_flag(),
                    out.status
                );
                let version = if proto == Proto::Http2 { "2" } else { "1.1" };
                assert!(
                    String::from_utf8_lossy(&out.stdout).ends_with(version),
                    "{path}: curl did not speak HTTP/{version}: {text}"
                );
            }
        }
    }
}

#[tokio::test]
async fn head_has_the_headers_of_get_and_no_body() {
    let s = TlsServer::start("").await;
    let blob = b"a small blob".to_vec();
    let d = sha256(&blob);
    let r = send(
        &s,
        Proto::Http1,
        Method::POST,
        &format!("/v2/team/app/blobs/uploads/?digest={d}"),
        &[],
        Some(blob.clone()),
    )
    .await;
    assert_eq!(r.status(), 201);
    let mut paths = head_paths();
    paths.push(format!("/v2/team/app/blobs/{d}"));
    for proto in PROTOCOLS {
        for path in &paths {
            let get = send(&s, proto, Method::GET, path, &[], None).await;
            let (status, headers) = (get.status(), get.headers().clone());
            let body = get.bytes().await.expect("GET body");
            let head = send(&s, proto, Method::HEAD, path, &[], None).await;
            assert_eq!(head.status(), status, "{proto:?} HEAD {path}");
            for (name, value) in &headers {
                if name != "date" {
                    assert_eq!(
                        head.headers().get(name),
                        Some(value),
                        "{proto:?} HEAD {path}: header {name}"
                    );
                }
            }
            assert_eq!(
                head.headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok()),
                Some(body.len().to_string().as_str()),
                "{proto:?} HEAD {path}: Content-Length of the GET body"
            );
            let head_body = head.bytes().await.expect("HEAD body");
            assert!(head_body.is_empty(), "{proto:?} HEAD {path}: a body");
        }
    }
}

// ---------------------------------------------------------------------------
// The token realm names host and port on both versions
// ---------------------------------------------------------------------------

#[tokio::test]
async fn token_realm_names_the_port_on_both_versions() {
    let s = auth_server("token").await;
    for proto in PROTOCOLS {
        let r = send(&s, proto, Method::GET, "/v2/", &[], None).await;
        assert_eq!(r.status(), 401);
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        let realm = format!("realm=\"https://{}/auth/token\"", s.addr);
        assert!(
            challenge.contains(&realm),
            "{proto:?}: challenge {challenge:?} lacks {realm}"
        );
    }
}

// ---------------------------------------------------------------------------
// Early answers and keep-alive
// ---------------------------------------------------------------------------

/// A request the server answers before reading its body, on a server with
/// token logins: an unauthenticated `PUT` of a blob (401).
fn unauthenticated_put(host: &str, len: usize) -> String {
    format!(
        "PUT /v2/team/app/blobs/uploads/0b0d9f5e-0000-4000-8000-000000000000?digest={ZERO_DIGEST} HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
    )
}

/// On one connection: a PUT whose body arrives after its head, answered
/// early (401, or 404 for an unknown upload), then a second request.
async fn early_answer_then_second_request<S>(mut conn: S, host: &str, unknown_upload: bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let body = vec![7u8; 10 * 1024];
    let (head, status) = if unknown_upload {
        let h = format!(
            "PATCH /v2/team/app/blobs/uploads/0b0d9f5e-0000-4000-8000-000000000000 HTTP/1.1\r\n\
             Host: {host}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        (h, 404)
    } else {
        (unauthenticated_put(host, body.len()), 401)
    };
    send_split(&mut conn, &head, &body).await;
    let mut buf = Vec::new();
    let first = read_response(&mut conn, &mut buf, "early answer").await;
    assert_eq!(first.status, status, "{}", first.head);
    assert!(
        String::from_utf8_lossy(&first.body).contains("\"errors\""),
        "an OCI error body: {:?}",
        first.body
    );
    assert_ne!(
        first.header("connection").as_deref(),
        Some("close"),
        "a small body is drained, the connection stays: {}",
        first.head
    );
    let second = format!("GET /v2/team/app/tags/list HTTP/1.1\r\nHost: {host}\r\n\r\n");
    conn.write_all(second.as_bytes())
        .await
        .expect("the connection is still open for a second request");
    let r = read_response(&mut conn, &mut buf, "second request").await;
    assert!(
        r.status == 401 || r.status == 404,
        "second request answered: {}",
        r.head
    );
}

#[tokio::test]
async fn early_answers_keep_the_connection_usable_over_tls() {
    for challenge in ["token", "basic"] {
        let s = auth_server(challenge).await;
        let host = s.addr.to_string();
        let conn = s.connect_tls(Proto::Http1).await;
        early_answer_then_second_request(conn, &host, false).await;
    }
    let open = TlsServer::start("").await;
    let conn = open.connect_tls(Proto::Http1).await;
    early_answer_then_second_request(conn, &open.addr.to_string(), true).await;
}

#[tokio::test]
async fn early_answers_keep_the_connection_usable_over_plain_http() {
    let dir = tempfile::tempdir().expect("temp dir");
    add_users(&dir.path().join("htpasswd"), &[ALICE]);
    let s =
        TlsServer::start_plain_in(dir, "auth:\n  htpasswd: htpasswd\n  challenge: basic\n").await;
    let conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    early_answer_then_second_request(conn, &s.addr.to_string(), false).await;
    let open = TlsServer::start_plain_in(tempfile::tempdir().unwrap(), "").await;
    let conn = tokio::net::TcpStream::connect(open.addr).await.unwrap();
    early_answer_then_second_request(conn, &open.addr.to_string(), true).await;
}

/// A body larger than the server drains: `Connection: close`, then a clean
/// close (TLS close_notify; plain: EOF).
#[tokio::test]
async fn early_answer_to_a_large_body_closes_cleanly() {
    let s = auth_server("token").await;
    let host = s.addr.to_string();
    let head = unauthenticated_put(&host, 4 * 1024 * 1024);
    let mut tls = s.connect_tls(Proto::Http1).await;
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut tls, &mut buf, "large PUT over TLS").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("connection").as_deref(),
        Some("close"),
        "{}",
        r.head
    );
    read_to_close(&mut tls)
        .await
        .expect("a clean TLS close (close_notify)");

    let dir = tempfile::tempdir().expect("temp dir");
    add_users(&dir.path().join("htpasswd"), &[ALICE]);
    let plain = TlsServer::start_plain_in(dir, "auth:\n  htpasswd: htpasswd\n").await;
    let mut tcp = tokio::net::TcpStream::connect(plain.addr).await.unwrap();
    tcp.write_all(unauthenticated_put(&plain.addr.to_string(), 4 * 1024 * 1024).as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut tcp, &mut buf, "large PUT over plain HTTP").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("connection").as_deref(),
        Some("close"),
        "{}",
        r.head
    );
    read_to_close(&mut tcp).await.expect("the server closes");
}

// ---------------------------------------------------------------------------
// Cross-repository mounts with tokens
// ---------------------------------------------------------------------------

/// The `scope="..."` of a Bearer challenge.
fn challenge_param(challenge: &str, key: &str) -> String {
    let start = challenge
        .find(&format!("{key}=\""))
        .unwrap_or_else(|| panic!("no {key} in {challenge:?}"))
        + key.len()
        + 2;
    let len = challenge[start..].find('"').expect("closing quote");
    challenge[start..start + len].to_string()
}

#[tokio::test]
async fn token_mount_follows_the_challenge_and_mounts() {
    let s = auth_server("token").await;
    let blob = b"a layer shared by two repositories".to_vec();
    let d = sha256(&blob);
    let alice = basic(ALICE);
    for (i, proto) in PROTOCOLS.into_iter().enumerate() {
        let src = format!("team/src{i}");
        let r = send(
            &s,
            proto,
            Method::POST,
            &format!("/v2/{src}/blobs/uploads/?digest={d}"),
            &[("authorization", alice.as_str())],
            Some(blob.clone()),
        )
        .await;
        assert_eq!(r.status(), 201, "{proto:?}: push to the source");
        let mount = format!("/v2/team/dst{i}/blobs/uploads/?mount={d}&from={src}");
        let r = send(&s, proto, Method::POST, &mount, &[], None).await;
        assert_eq!(r.status(), 401);
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        let scope = challenge_param(&challenge, "scope");
        let want = format!("repository:team/dst{i}:pull,push repository:{src}:pull");
        assert_eq!(scope, want, "{proto:?}: challenge {challenge}");
        // As Go clients do: realm and service from the challenge, the scope
        // as one space-separated parameter.
        let realm = challenge_param(&challenge, "realm");
        let service = challenge_param(&challenge, "service");
        let token_url = reqwest::Url::parse_with_params(
            &realm,
            &[("service", service.as_str()), ("scope", scope.as_str())],
        )
        .unwrap();
        let path = format!("{}?{}", token_url.path(), token_url.query().unwrap());
        let r = send(
            &s,
            proto,
            Method::GET,
            &path,
            &[("authorization", alice.as_str())],
            None,
        )
        .await;
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        let token = v["token"].as_str().expect("token").to_string();
        let bearer = format!("Bearer {token}");
        let r = send(
            &s,
            proto,
            Method::POST,
            &mount,
            &[("authorization", bearer.as_str())],
            None,
        )
        .await;
        assert_eq!(r.status(), 201, "{proto:?}: the mount happens");
        assert_eq!(
            r.headers()["docker-content-digest"].to_str().unwrap(),
            d,
            "{proto:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Small points
// ---------------------------------------------------------------------------

#[tokio::test]
async fn unparsable_range_serves_the_whole_blob() {
    let s = TlsServer::start("").await;
    let blob = b"0123456789".to_vec();
    let d = sha256(&blob);
    let path = format!("/v2/team/app/blobs/{d}");
    let r = send(
        &s,
        Proto::Http1,
        Method::POST,
        &format!("/v2/team/app/blobs/uploads/?digest={d}"),
        &[],
        Some(blob.clone()),
    )
    .await;
    assert_eq!(r.status(), 201);
    for proto in PROTOCOLS {
        for range in ["bytes=abc", "bytes=1-x", "pages=1-2", "bytes="] {
            let r = send(&s, proto, Method::GET, &path, &[("range", range)], None).await;
            assert_eq!(r.status(), 200, "{proto:?} Range: {range}");
            assert_eq!(r.bytes().await.unwrap().to_vec(), blob, "Range: {range}");
        }
        let r = send(
            &s,
            proto,
            Method::GET,
            &path,
            &[("range", "bytes=20-")],
            None,
        )
        .await;
        assert_eq!(
            r.status(),
            416,
            "a valid but unsatisfiable range is still 416"
        );
    }
}

#[tokio::test]
async fn front_pages_allow_only_get_and_head() {
    let s = TlsServer::start("").await;
    for proto in PROTOCOLS {
        for path in ["/", "/ca.crt"] {
            for method in [Method::PUT, Method::POST, Method::DELETE, Method::PATCH] {
                let r = send(&s, proto, method.clone(), path, &[], Some(b"x".to_vec())).await;
                assert_eq!(r.status(), 405, "{proto:?} {method} {path}");
                assert_eq!(
                    r.headers().get("allow").and_then(|v| v.to_str().ok()),
                    Some("GET, HEAD"),
                    "{method} {path}"
                );
            }
        }
    }
}

/// wrk and some other clients send an IP address as SNI; rustls ignores it
/// and logs it, which is not worth a warning on every connection.
#[test]
fn ip_address_sni_is_not_a_warning() {
    let openssl = require_tool("openssl", "openssl");
    let dir = common::temp_dir("regproxy-sni-");
    let config = common::write_config(
        dir.path(),
        &format!(
            "tls:\n  dir: {}\nauth:\n  enabled: false\n",
            dir.path().join("certs").display()
        ),
    );
    let server = common::serve_config(&config, &dir.path().join("data"));
    let out = common::run_with_input(
        Command::new(openssl)
            .args(["s_client", "-connect"])
            .arg(server.host())
            .args(["-servername", "127.0.0.1", "-CAfile"])
            .arg(dir.path().join("certs/ca.crt")),
        b"",
        TIMEOUT,
    );
    assert!(
        common::output_text(&out).contains("Verify return code: 0"),
        "openssl s_client: {}",
        common::output_text(&out)
    );
    // The handshake is logged (or not) before the connection is served:
    // a request after it makes sure the server got that far.
    let (status, _) = common::curl(
        Path::new(&dir.path().join("certs/ca.crt")),
        &[&format!("https://{}/", server.host())],
    );
    assert_eq!(status, 200);
    let logs = server.logs();
    assert!(
        !logs.contains("Illegal SNI"),
        "IP-address SNI is logged: {logs}"
    );
}

// ---------------------------------------------------------------------------
// A registry client as Go's (crane, ORAS) behaves, over HTTP/2
// ---------------------------------------------------------------------------

/// Answers 401 challenges as Go registry clients do: `Bearer` -> a token
/// from the challenge's realm (with its service and scope, Basic
/// credentials), then the same request again; `Basic` -> the request again
/// with credentials.
struct ChallengeClient<'a> {
    s: &'a TlsServer,
    proto: Proto,
    client: reqwest::Client,
    auth: Option<String>,
}

impl<'a> ChallengeClient<'a> {
    fn new(s: &'a TlsServer, proto: Proto) -> Self {
        ChallengeClient {
            s,
            proto,
            client: s.client(proto),
            auth: None,
        }
    }

    async fn call(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> reqwest::Response {
        let url = if url.starts_with('/') {
            self.s.url(url)
        } else {
            url.to_string()
        };
        for attempt in 0..2 {
            let mut req = self.client.request(method.clone(), &url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(a) = &self.auth {
                req = req.header("authorization", a);
            }
            if let Some(b) = body {
                req = req.body(b.to_vec());
            }
            let r = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e:?}"));
            assert_eq!(r.version(), self.proto.version(), "{method} {url}");
            if r.status() != 401 || attempt == 1 {
                return r;
            }
            let challenge = r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_string();
            self.auth = Some(if challenge.starts_with("Bearer ") {
                let token_url = reqwest::Url::parse_with_params(
                    &challenge_param(&challenge, "realm"),
                    &[
                        ("service", challenge_param(&challenge, "service")),
                        ("scope", challenge_param(&challenge, "scope")),
                    ],
                )
                .unwrap();
                let t = self
                    .client
                    .get(token_url.clone())
                    .header("authorization", basic(ALICE))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("token from {token_url}: {e:?}"));
                assert_eq!(t.status(), 200, "token from {token_url}");
                assert_eq!(t.version(), self.proto.version());
                let v: serde_json::Value = t.json().await.unwrap();
                format!("Bearer {}", v["token"].as_str().expect("a token"))
            } else {
                assert!(challenge.starts_with("Basic "), "{challenge}");
                basic(ALICE)
            });
        }
        unreachable!("two attempts at most")
    }

    /// POST, then PUT `?digest=` (as Go clients push a blob).
    async fn push_blob(&mut self, repo: &str, blob: &[u8]) -> String {
        let d = sha256(blob);
        let r = self
            .call(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status(), 202);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = self
            .call(
                Method::PUT,
                &format!("{loc}{sep}digest={d}"),
                &[("content-type", "application/octet-stream")],
                Some(blob),
            )
            .await;
        assert_eq!(r.status(), 201, "PUT {loc}");
        d
    }
}

#[tokio::test]
async fn http2_client_follows_challenges_to_push_and_pull() {
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    for challenge in ["token", "basic"] {
        let s = auth_server(challenge).await;
        for proto in PROTOCOLS {
            let mut c = ChallengeClient::new(&s, proto);
            let repo = format!("team/{challenge}-{proto:?}").to_lowercase();
            let layer = vec![42u8; 300 * 1024];
            let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
            let layer_d = c.push_blob(&repo, &layer).await;
            let config_d = c.push_blob(&repo, &config).await;
            let manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                            "digest": config_d, "size": config.len() },
                "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                             "digest": layer_d, "size": layer.len() }],
            }))
            .unwrap();
            let r = c
                .call(
                    Method::PUT,
                    &format!("/v2/{repo}/manifests/v1"),
                    &[("content-type", MANIFEST)],
                    Some(&manifest),
                )
                .await;
            assert_eq!(r.status(), 201, "{challenge} {proto:?}: manifest PUT");

            // Pull, as a fresh client would.
            let mut c = ChallengeClient::new(&s, proto);
            let r = c
                .call(
                    Method::GET,
                    &format!("/v2/{repo}/manifests/v1"),
                    &[("accept", MANIFEST)],
                    None,
                )
                .await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.bytes().await.unwrap().to_vec(), manifest);
            let r = c
                .call(
                    Method::GET,
                    &format!("/v2/{repo}/blobs/{layer_d}"),
                    &[],
                    None,
                )
                .await;
            assert_eq!(r.status(), 200);
            assert_eq!(
                r.bytes().await.unwrap().to_vec(),
                layer,
                "{challenge} {proto:?}"
            );
        }
    }
}
