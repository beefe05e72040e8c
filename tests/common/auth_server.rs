//! The regproxy server in-process for auth tests: started on
//! `127.0.0.1:0` with its own temp dir and htpasswd users (bcrypt cost 4),
//! plus the requests a Docker client makes (`/v2/`, the token service,
//! blob pushes) and checks of the answers (status, OCI error code, the
//! `WWW-Authenticate` challenge, Docker's token format).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use regproxy::config::Config;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::sync::oneshot;

use super::add_users;

/// Upper bound for any one request.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A registry with authentication served in-process on `127.0.0.1:0`;
/// dropping it asks the server to stop.
pub struct Server {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

pub fn client_from(local: Option<IpAddr>) -> reqwest::Client {
    // reqwest is built with rustls but no default crypto provider; plain
    // HTTP still needs one installed (a second install is a harmless error).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .local_address(local)
        .build()
        .expect("reqwest client")
}

impl Server {
    /// A server with these htpasswd users; `auth_extra` is YAML added under
    /// `auth:` (indented by two spaces), e.g. `"  challenge: basic\n"`.
    pub async fn start(users: &[(&str, &str)], auth_extra: &str) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        add_users(&dir.path().join("htpasswd"), users);
        Server::start_in(dir, auth_extra).await
    }

    /// A server on a prepared directory (its `htpasswd` file as it is).
    pub async fn start_in(dir: tempfile::TempDir, auth_extra: &str) -> Server {
        let yaml = format!(
            "tls:\n  enabled: false\nstorage:\n  filesystem:\n    root: data\n\
             auth:\n  htpasswd: htpasswd\n{auth_extra}"
        );
        let config = Config::parse(&yaml, dir.path())
            .unwrap_or_else(|p| panic!("test config is invalid: {p:?}\n{yaml}"));
        assert!(config.auth.is_some(), "auth must be on");
        let server = regproxy::proxy::Server::new(&config).expect("server prepares");
        assert!(server.auth_enabled());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(listener, async {
            let _ = rx.await;
        }));
        Server {
            addr,
            dir,
            client: client_from(None),
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn htpasswd(&self) -> PathBuf {
        self.dir.path().join("htpasswd")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The token realm clients are sent to.
    pub fn realm(&self) -> String {
        self.url("/auth/token")
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        cred: Cred<'_>,
        body: Option<Vec<u8>>,
    ) -> Resp {
        send(&self.client, &self.url(path), method, cred, body, None).await
    }

    pub async fn get(&self, path: &str, cred: Cred<'_>) -> Resp {
        self.send("GET", path, cred, None).await
    }

    /// `GET /auth/token?QUERY` with Basic credentials.
    pub async fn token_get(&self, user: &str, password: &str, query: &str) -> Resp {
        let path = format!("/auth/token?{query}");
        self.get(&path, Cred::Basic(user, password)).await
    }

    /// `POST /auth/token` with an OAuth2 form.
    pub async fn token_post(&self, form: &[(&str, &str)]) -> Resp {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        send(
            &self.client,
            &self.url("/auth/token"),
            "POST",
            Cred::None,
            Some(body.into_bytes()),
            Some("application/x-www-form-urlencoded"),
        )
        .await
    }

    /// An access token for `scope` via `GET` with Basic; panics unless 200.
    pub async fn token(&self, (user, password): (&str, &str), scope: &str) -> String {
        let query = format!("service=regproxy&scope={scope}");
        token_of(&self.token_get(user, password, &query).await)
    }

    /// A monolithic blob upload (`POST ...?digest=`).
    pub async fn push_blob(&self, repo: &str, data: &[u8], cred: Cred<'_>) -> Resp {
        let path = format!(
            "/v2/{repo}/blobs/uploads/?digest=sha256:{}",
            super::sha256_hex(data)
        );
        self.send("POST", &path, cred, Some(data.to_vec())).await
    }

    pub async fn get_blob(&self, repo: &str, data: &[u8], cred: Cred<'_>) -> Resp {
        let path = format!("/v2/{repo}/blobs/sha256:{}", super::sha256_hex(data));
        self.get(&path, cred).await
    }
}

/// Credentials for one request.
#[derive(Clone, Copy)]
pub enum Cred<'a> {
    None,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
    /// A raw `Authorization` value.
    Header(&'a str),
}

pub fn basic_value(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

pub async fn send(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    cred: Cred<'_>,
    body: Option<Vec<u8>>,
    content_type: Option<&str>,
) -> Resp {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let what = format!("{method} {url}");
    let mut req = client.request(method, url);
    let value = match cred {
        Cred::None => None,
        Cred::Basic(u, p) => Some(basic_value(u, p)),
        Cred::Bearer(t) => Some(format!("Bearer {t}")),
        Cred::Header(h) => Some(h.to_string()),
    };
    if let Some(v) = value {
        req = req.header("Authorization", v);
    }
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e:?}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("response body").to_vec();
    let r = Resp {
        what,
        status,
        headers,
        body,
    };
    assert!(
        r.status < 500 || r.status == 503,
        "{}: server error {}: {}",
        r.what,
        r.status,
        r.text()
    );
    r
}

pub struct Resp {
    pub what: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {}", self.what, self.text()))
    }

    pub fn challenge(&self) -> String {
        self.header("WWW-Authenticate")
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "{}: expected {status}, got {} {}\nheaders: {:?}",
            self.what,
            self.status,
            self.text(),
            self.headers
        );
        self
    }

    /// Asserts the status and the OCI error JSON's code; returns its message.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> String {
        self.expect(status);
        let v = self.json();
        let errors = v["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no errors array: {v}", self.what));
        assert_eq!(errors[0]["code"], code, "{}: {v}", self.what);
        errors[0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A 401 with a Bearer challenge naming `error=` (or none).
    #[track_caller]
    pub fn expect_bearer_401(&self, error: Option<&str>) -> String {
        self.expect_error(401, "UNAUTHORIZED");
        let c = self.challenge();
        assert!(
            c.starts_with("Bearer realm=\""),
            "{}: challenge {c:?}",
            self.what
        );
        match error {
            Some(e) => assert!(
                c.contains(&format!("error=\"{e}\"")),
                "{}: challenge {c:?} lacks error={e}",
                self.what
            ),
            None => assert!(!c.contains("error="), "{}: challenge {c:?}", self.what),
        }
        c
    }
}

/// The `token` of a 200 token answer, checked against Docker's format.
#[track_caller]
pub fn token_of(r: &Resp) -> String {
    r.expect(200);
    let v = r.json();
    let token = v["token"].as_str().unwrap_or_default().to_string();
    assert!(token.split('.').count() == 3, "not a JWT: {v}");
    assert_eq!(v["access_token"], v["token"], "{v}");
    assert!(v["expires_in"].as_u64().is_some_and(|s| s >= 60), "{v}");
    assert!(
        v["issued_at"].as_str().is_some_and(|s| s.contains('T')),
        "{v}"
    );
    token
}

/// The claims of a JWT, read without verifying it (what a client sees).
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Polls `check` every 100 ms until it returns true; panics after `limit`.
/// Returns how long it took.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
