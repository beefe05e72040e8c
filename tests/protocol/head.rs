//! HEAD answers carry headers only (the `Content-Length` of GET, no
//! body) on both versions, checked with real `curl -I` and the HTTP/2
//! client; the token realm names the host and port the client dialled.

use super::*;

/// Paths whose GET answers have a body: success and errors.
pub fn head_paths() -> Vec<String> {
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
