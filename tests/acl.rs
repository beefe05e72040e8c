//! Attacks on the access rules, against the real server in-process: encoded
//! slashes and dots, mounts from forbidden repositories, catalog and
//! tag-list leaks, hand-widened tokens, a token for one repository used on
//! another, anonymous access, and live reload of the rules. Every refusal
//! must look the same whether the repository exists or not.
//!
//! Long file: an attack suite, one test per attack, sharing the server and push helpers at the top.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use regproxy::config::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RULES: &str = "\
tls:
  enabled: false
auth:
  htpasswd: htpasswd
groups:
  team-a: [alice]
  team-b: [bob]
  admins: [root]
access:
  admins: [group:admins]
  rules:
    - effect: deny
      subjects: [user:mallory]
      repositories: [\"**\"]
      actions: [\"*\"]
    - subjects: [group:team-a]
      repositories: [team-a]
      actions: [pull, push]
    - subjects: [group:team-b]
      repositories: [team-b]
      actions: [pull, push]
    - subjects: [authenticated]
      repositories: [\"${user}\"]
      actions: [\"*\"]
    - subjects: [authenticated, anonymous]
      repositories: [shared]
      actions: [pull]
";

const USERS: &[&str] = &["alice", "bob", "root", "mallory"];

fn password(user: &str) -> String {
    format!("{user}-secret-pw")
}

struct Fixture {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl Fixture {
    async fn start() -> Fixture {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("proxy.yaml"), RULES).unwrap();
        let htpasswd = dir.path().join("htpasswd");
        for u in USERS {
            let hash = regproxy::auth::htpasswd::hash_password(
                &regproxy::auth::secret::Secret::new(password(u)),
                4,
            )
            .unwrap();
            regproxy::auth::htpasswd::edit(&htpasswd, |f| f.set(u, hash)).unwrap();
        }
        let mut config = Config::load(&dir.path().join("proxy.yaml")).expect("valid rules");
        config.storage_root = dir.path().join("data");
        let server = regproxy::proxy::Server::new(&config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(listener, async {
            let _ = rx.await;
        }));
        let f = Fixture {
            addr,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            stop: Some(tx),
        };
        for repo in ["team-a/app", "team-b/app", "shared/base", "bob/tools"] {
            f.push_image("root", repo).await;
        }
        f
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn call(
        &self,
        user: Option<&str>,
        method: Method,
        path: &str,
    ) -> (StatusCode, String, reqwest::header::HeaderMap) {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(u) = user {
            rb = rb.basic_auth(u, Some(password(u)));
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        (status, r.text().await.unwrap(), headers)
    }

    async fn bearer(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String, reqwest::header::HeaderMap) {
        let r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        (status, r.text().await.unwrap(), headers)
    }

    /// A token from the token service; `None` user = anonymous.
    async fn token(&self, user: Option<&str>, scopes: &[&str]) -> (String, Value) {
        let mut q: Vec<(&str, &str)> = vec![("service", "regproxy")];
        for s in scopes {
            q.push(("scope", s));
        }
        let mut rb = self.http.get(self.url("/auth/token")).query(&q);
        if let Some(u) = user {
            rb = rb.basic_auth(u, Some(password(u)));
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 200, "token for {user:?}");
        let body: Value = r.json().await.unwrap();
        let token = body["token"].as_str().unwrap().to_string();
        let claims = decode_claims(&token);
        (token, claims)
    }

    /// Pushes a one-layer OCI image as `user` (Basic auth), tagged `v1`.
    async fn push_image(&self, user: &str, repo: &str) -> String {
        let layer = format!("layer of {repo}").into_bytes();
        let config = b"{}".to_vec();
        for blob in [&layer, &config] {
            let d = digest(blob);
            let (s, b, _) = self.upload(user, repo, &d, blob.clone()).await;
            assert_eq!(s, 201, "{user} push blob to {repo}: {b}");
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&layer), "size": layer.len()}]
        })
        .to_string();
        let r = self
            .http
            .put(self.url(&format!("/v2/{repo}/manifests/v1")))
            .basic_auth(user, Some(password(user)))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{user} push manifest to {repo}");
        digest(manifest.as_bytes())
    }

    async fn upload(
        &self,
        user: &str,
        repo: &str,
        d: &str,
        blob: Vec<u8>,
    ) -> (StatusCode, String, reqwest::header::HeaderMap) {
        let r = self
            .http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
            .basic_auth(user, Some(password(user)))
            .body(blob)
            .send()
            .await
            .unwrap();
        let s = r.status();
        let h = r.headers().clone();
        (s, r.text().await.unwrap(), h)
    }

    /// A hand-written request, for paths a URL library would normalize.
    async fn raw(&self, user: &str, request_line: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password(user)));
        let req = format!("{request_line}\r\nHost: {}\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n", self.addr);
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&out).to_string();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        (status, body)
    }
}

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

fn decode_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .map(|v| v["errors"][0]["code"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn rules_decide_pull_push_delete_for_each_user() {
    let f = Fixture::start().await;
    let cases: &[(&str, Method, &str, u16)] = &[
        ("alice", Method::GET, "/v2/team-a/app/manifests/v1", 200),
        ("alice", Method::GET, "/v2/team-b/app/manifests/v1", 403),
        ("alice", Method::GET, "/v2/shared/base/manifests/v1", 200),
        ("alice", Method::DELETE, "/v2/team-a/app/manifests/v1", 403),
        ("bob", Method::GET, "/v2/team-b/app/manifests/v1", 200),
        ("bob", Method::GET, "/v2/bob/tools/manifests/v1", 200),
        ("alice", Method::GET, "/v2/bob/tools/manifests/v1", 403),
        ("mallory", Method::GET, "/v2/shared/base/manifests/v1", 403),
        ("root", Method::GET, "/v2/team-b/app/manifests/v1", 200),
    ];
    for (user, method, path, want) in cases {
        let (s, body, _) = f.call(Some(user), method.clone(), path).await;
        assert_eq!(s.as_u16(), *want, "{user} {method} {path}: {body}");
        if *want == 403 {
            assert_eq!(code(&body), "DENIED");
            assert!(body.contains("requested access to the resource is denied"));
        }
    }
    // Pushes: own namespace and personal namespace yes, others no.
    f.push_image("alice", "team-a/new").await;
    f.push_image("alice", "alice/personal").await;
    let d = digest(b"x");
    let (s, body, _) = f.upload("alice", "team-b/app", &d, b"x".to_vec()).await;
    assert_eq!(s, 403, "{body}");
    let (s, _, _) = f.upload("alice", "shared/base", &d, b"x".to_vec()).await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn deleting_tags_and_manifests_needs_the_delete_action() {
    let f = Fixture::start().await;
    let manifest = |repo: &str| format!("/v2/{repo}/manifests/v1");
    // Push (and pull) rights are not enough; nor is being logged out.
    for (user, repo) in [
        (Some("alice"), "team-a/app"),
        (Some("bob"), "team-b/app"),
        (Some("mallory"), "shared/base"),
        (None, "shared/base"),
    ] {
        let (s, body, _) = f.call(user, Method::DELETE, &manifest(repo)).await;
        assert!(s == 403 || s == 401, "{user:?} deleted {repo}: {s} {body}");
        let (s, _, _) = f.call(Some("root"), Method::GET, &manifest(repo)).await;
        assert_eq!(
            s, 200,
            "{repo}:v1 is still there after {user:?}'s refused delete"
        );
    }
    // A user granted `delete` (bob, `*` on his own namespace): by tag
    // removes the tag only, by digest the manifest.
    let d = f.push_image("bob", "bob/tools").await;
    let (s, body, _) = f
        .call(Some("bob"), Method::DELETE, &manifest("bob/tools"))
        .await;
    assert_eq!(s, 202, "{body}");
    let (s, _, _) = f
        .call(Some("bob"), Method::GET, &manifest("bob/tools"))
        .await;
    assert_eq!(s, 404, "the tag is gone");
    let by_digest = format!("/v2/bob/tools/manifests/{d}");
    let (s, _, _) = f.call(Some("bob"), Method::GET, &by_digest).await;
    assert_eq!(s, 200, "deleting the tag keeps the manifest");
    let (s, body, _) = f.call(Some("bob"), Method::DELETE, &by_digest).await;
    assert_eq!(s, 202, "{body}");
    let (s, _, _) = f.call(Some("bob"), Method::GET, &by_digest).await;
    assert_eq!(s, 404);
    // An admin may delete anywhere.
    let (s, body, _) = f
        .call(Some("root"), Method::DELETE, &manifest("team-b/app"))
        .await;
    assert_eq!(s, 202, "{body}");
    let (s, _, _) = f
        .call(Some("root"), Method::GET, &manifest("team-b/app"))
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn refusals_do_not_reveal_whether_a_repository_exists() {
    let f = Fixture::start().await;
    for suffix in ["tags/list", &format!("referrers/{}", digest(b"x"))] {
        let existing = f
            .call(
                Some("alice"),
                Method::GET,
                &format!("/v2/team-b/app/{suffix}"),
            )
            .await;
        let missing = f
            .call(
                Some("alice"),
                Method::GET,
                &format!("/v2/team-b/nothing-here/{suffix}"),
            )
            .await;
        assert_eq!(existing.0, 404, "{suffix}: {}", existing.1);
        assert_eq!(code(&existing.1), "NAME_UNKNOWN");
        assert_eq!(
            (existing.0, &existing.1),
            (missing.0, &missing.1),
            "{suffix}"
        );
    }
    let existing = f
        .call(Some("alice"), Method::GET, "/v2/team-b/app/manifests/v1")
        .await;
    let missing = f
        .call(
            Some("alice"),
            Method::GET,
            "/v2/team-b/nothing-here/manifests/v1",
        )
        .await;
    // The same answer, but for the name the client itself sent.
    assert_eq!(existing.0, 403);
    assert_eq!(
        (existing.0, existing.1.replace("team-b/app", "NAME")),
        (missing.0, missing.1.replace("team-b/nothing-here", "NAME"))
    );
    let existing = f
        .call(Some("alice"), Method::HEAD, "/v2/team-b/app/manifests/v1")
        .await;
    let missing = f
        .call(
            Some("alice"),
            Method::HEAD,
            "/v2/team-b/nothing-here/manifests/v1",
        )
        .await;
    assert_eq!(existing.0, missing.0);
}

#[tokio::test]
async fn catalog_lists_only_what_the_user_may_pull() {
    let f = Fixture::start().await;
    let (s, body, _) = f.call(Some("alice"), Method::GET, "/v2/_catalog").await;
    assert_eq!(s, 200);
    let repos: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(repos["repositories"], json!(["shared/base", "team-a/app"]));
    let (_, body, _) = f.call(Some("root"), Method::GET, "/v2/_catalog").await;
    let all: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(all["repositories"].as_array().unwrap().len(), 4);
    let (_, body, _) = f.call(Some("mallory"), Method::GET, "/v2/_catalog").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["repositories"],
        json!([])
    );
    // With a token too.
    let (token, _) = f.token(Some("alice"), &["registry:catalog:*"]).await;
    let (s, body, _) = f.bearer(&token, Method::GET, "/v2/_catalog", vec![]).await;
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["repositories"],
        json!(["shared/base", "team-a/app"])
    );
}

#[tokio::test]
async fn names_are_checked_after_canonical_parsing() {
    let f = Fixture::start().await;
    let sneaky = [
        "GET /v2/team-a/../team-b/app/manifests/v1 HTTP/1.1",
        "GET /v2/team-a/%2e%2e/team-b/app/manifests/v1 HTTP/1.1",
        "GET /v2/team-a%2F..%2Fteam-b/app/manifests/v1 HTTP/1.1",
        "GET /v2/team-a%2fapp/manifests/v1 HTTP/1.1",
        "GET /v2/TEAM-B/app/manifests/v1 HTTP/1.1",
        "GET /v2/team-b//app/manifests/v1 HTTP/1.1",
        "GET /v2/team-a//team-b/app/manifests/v1 HTTP/1.1",
        "GET /v2/team-b/app//manifests/v1 HTTP/1.1",
        "GET /v2/./team-b/app/manifests/v1 HTTP/1.1",
        "GET /v2/team-a/app/../../team-b/app/tags/list HTTP/1.1",
    ];
    for line in sneaky {
        let (status, body) = f.raw("alice", line).await;
        assert!((400..500).contains(&status), "{line}: {status} {body}");
        assert!(!body.contains("layer of team-b"), "{line}");
        assert_ne!(status, 200, "{line}");
    }
    let long = format!("GET /v2/team-a/{}/manifests/v1 HTTP/1.1", "a".repeat(300));
    let (status, body) = f.raw("alice", &long).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "NAME_INVALID");
}

#[tokio::test]
async fn mounting_from_a_forbidden_repository_falls_back_to_an_upload() {
    let f = Fixture::start().await;
    let layer = digest(b"layer of team-b/app");
    let path = format!("/v2/team-a/app/blobs/uploads/?mount={layer}&from=team-b/app");
    let (s, _, h) = f.call(Some("alice"), Method::POST, &path).await;
    assert_eq!(s, 202, "no mount: a fresh upload");
    assert!(h["location"]
        .to_str()
        .unwrap()
        .contains("/v2/team-a/app/blobs/uploads/"));
    let (s, _, _) = f
        .call(
            Some("alice"),
            Method::HEAD,
            &format!("/v2/team-a/app/blobs/{layer}"),
        )
        .await;
    assert_eq!(s, 404, "the blob did not leak into team-a");
    // The same with a missing blob: indistinguishable.
    let (s2, _, _) = f
        .call(
            Some("alice"),
            Method::POST,
            &format!(
                "/v2/team-a/app/blobs/uploads/?mount={}&from=team-b/app",
                digest(b"nothing")
            ),
        )
        .await;
    assert_eq!(s2, 202);
    // An allowed source mounts.
    let shared = digest(b"layer of shared/base");
    let (s, _, _) = f
        .call(
            Some("alice"),
            Method::POST,
            &format!("/v2/team-a/app/blobs/uploads/?mount={shared}&from=shared/base"),
        )
        .await;
    assert_eq!(s, 201);
    // With a token that lacks pull on the source, no mount either.
    let (token, _) = f
        .token(
            Some("alice"),
            &[
                "repository:team-a/app:pull,push",
                "repository:team-b/app:pull",
            ],
        )
        .await;
    let (s, _, _) = f.bearer(&token, Method::POST, &path, vec![]).await;
    assert_eq!(s, 202);
}

#[tokio::test]
async fn the_token_service_grants_only_the_allowed_subset() {
    let f = Fixture::start().await;
    let (_, claims) = f
        .token(
            Some("alice"),
            &[
                "repository:team-a/app:pull,push,delete",
                "repository:team-b/app:pull,push",
                "repository:shared/base:pull,push",
            ],
        )
        .await;
    assert_eq!(
        claims["access"],
        json!([
            {"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]},
            {"type": "repository", "name": "shared/base", "actions": ["pull"]},
        ])
    );
    let (_, claims) = f
        .token(
            None,
            &[
                "repository:team-a/app:pull",
                "repository:shared/base:pull,push",
            ],
        )
        .await;
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": "shared/base", "actions": ["pull"]}])
    );
}

#[tokio::test]
async fn tokens_cannot_be_widened_or_reused_elsewhere() {
    let f = Fixture::start().await;
    let (token, claims) = f
        .token(Some("alice"), &["repository:team-a/app:pull"])
        .await;
    let (s, _, _) = f
        .bearer(&token, Method::GET, "/v2/team-a/app/manifests/v1", vec![])
        .await;
    assert_eq!(s, 200);

    // For another repository alice may use: ask for a new token.
    let (s, _, h) = f
        .bearer(&token, Method::GET, "/v2/shared/base/manifests/v1", vec![])
        .await;
    assert_eq!(s, 401);
    let challenge = h["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("scope=\"repository:shared/base:pull\"")
            && challenge.contains("insufficient_scope"),
        "{challenge}"
    );
    // For a repository alice may not use: denied outright.
    let (s, body, _) = f
        .bearer(&token, Method::GET, "/v2/team-b/app/manifests/v1", vec![])
        .await;
    assert_eq!(s, 403, "{body}");
    // Push with a pull token.
    let (s, _, _) = f
        .bearer(
            &token,
            Method::POST,
            "/v2/team-a/app/blobs/uploads/",
            vec![],
        )
        .await;
    assert_eq!(s, 401);

    // Widened by hand: the signature no longer matches.
    let parts: Vec<&str> = token.split('.').collect();
    let mut widened = claims.clone();
    widened["access"] =
        json!([{"type": "repository", "name": "team-b/app", "actions": ["pull", "push"]}]);
    let forged_payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(widened.to_string());
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    let (s, body, _) = f
        .bearer(&forged, Method::GET, "/v2/team-b/app/manifests/v1", vec![])
        .await;
    assert_eq!(s, 401, "{body}");
    // alg: none
    let header =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let (s, _, _) = f
        .bearer(
            &format!("{header}.{forged_payload}."),
            Method::GET,
            "/v2/team-b/app/manifests/v1",
            vec![],
        )
        .await;
    assert_eq!(s, 401);

    // bob's token is no good on team-a either.
    let (bob_token, _) = f.token(Some("bob"), &["repository:team-b/app:pull"]).await;
    let (s, _, _) = f
        .bearer(
            &bob_token,
            Method::GET,
            "/v2/team-a/app/manifests/v1",
            vec![],
        )
        .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn anonymous_users_get_only_what_anonymous_rules_give() {
    let f = Fixture::start().await;
    let (s, _, h) = f.call(None, Method::GET, "/v2/").await;
    assert_eq!(s, 401);
    assert!(h.contains_key("www-authenticate"));
    let (s, _, _) = f.call(None, Method::GET, "/v2/_catalog").await;
    assert_eq!(s, 401);
    for path in [
        "/v2/team-a/app/manifests/v1",
        "/v2/team-a/app/tags/list",
        "/v2/missing/tags/list",
    ] {
        let (s, body, _) = f.call(None, Method::GET, path).await;
        assert_eq!(s, 401, "{path}: {body}");
        assert_eq!(code(&body), "UNAUTHORIZED");
    }
    let (token, claims) = f
        .token(
            None,
            &["repository:shared/base:pull", "repository:team-a/app:pull"],
        )
        .await;
    assert_eq!(claims["access"].as_array().unwrap().len(), 1);
    let (s, _, _) = f
        .bearer(&token, Method::GET, "/v2/shared/base/manifests/v1", vec![])
        .await;
    assert_eq!(s, 200, "anonymous pull of shared");
    let (s, _, _) = f
        .bearer(&token, Method::GET, "/v2/team-a/app/manifests/v1", vec![])
        .await;
    assert_eq!(s, 401);
    let (s, _, _) = f
        .call(None, Method::GET, "/v2/shared/base/manifests/v1")
        .await;
    assert_eq!(
        s, 200,
        "anonymous pull of shared without a token (Basic mode clients)"
    );
    let (s, _, _) = f
        .call(None, Method::POST, "/v2/shared/base/blobs/uploads/")
        .await;
    assert_eq!(s, 401);
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what} did not happen in time");
}

fn rewrite(dir: &Path, text: &str) {
    let tmp = dir.join("proxy.yaml.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("proxy.yaml")).unwrap();
}

#[tokio::test]
async fn rules_reload_live_and_a_broken_file_keeps_the_old_ones() {
    let f = Fixture::start().await;
    let (token, _) = f
        .token(Some("alice"), &["repository:team-a/app:pull"])
        .await;
    assert_eq!(
        f.call(Some("alice"), Method::GET, "/v2/team-b/app/manifests/v1")
            .await
            .0,
        403
    );

    // Let team-a read team-b: an earlier rule than the team-b one.
    let more = RULES.replace(
        "    - subjects: [group:team-b]",
        "    - subjects: [group:team-a]\n      repositories: [team-b]\n      actions: [pull]\n    - subjects: [group:team-b]",
    );
    rewrite(f.dir.path(), &more);
    wait_until("alice may pull team-b", async || {
        f.call(Some("alice"), Method::GET, "/v2/team-b/app/manifests/v1")
            .await
            .0
            == 200
    })
    .await;

    // Take team-a's own rule away: the token issued before no longer helps.
    let less = RULES.replace(
        "      repositories: [team-a]\n      actions: [pull, push]\n",
        "      repositories: [team-a]\n      actions: [push]\n",
    );
    rewrite(f.dir.path(), &less);
    wait_until("alice's token stops working", async || {
        f.bearer(&token, Method::GET, "/v2/team-a/app/manifests/v1", vec![])
            .await
            .0
            == 403
    })
    .await;

    // A file caught empty (or with its access section gone) must not open
    // the registry: the previous rules stay.
    rewrite(f.dir.path(), "");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        f.call(Some("alice"), Method::GET, "/v2/team-a/app/manifests/v1")
            .await
            .0,
        403,
        "old rules kept after an empty file"
    );

    // A broken file: the previous rules stay.
    rewrite(f.dir.path(), &format!("{less}\n    - subjects: [group:nobody]\n      repositories: [x]\n      actions: [fly]\n"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        f.call(Some("alice"), Method::GET, "/v2/team-a/app/manifests/v1")
            .await
            .0,
        403,
        "old rules kept"
    );
    assert_eq!(
        f.call(Some("alice"), Method::GET, "/v2/shared/base/manifests/v1")
            .await
            .0,
        200,
        "old rules kept"
    );
}
