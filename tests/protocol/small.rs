//! The small points: an unparsable `Range` is ignored, `/` and `/ca.crt`
//! answer only GET and HEAD, `/` sends browsers to the web UI, and
//! IP-address SNI is not a logged warning.

use super::*;

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

/// A browser (it accepts HTML) at `/` is sent to the web UI; other
/// clients still get the plain-text pointer.
#[tokio::test]
async fn the_front_page_sends_browsers_to_the_web_ui() {
    let s = TlsServer::start("").await;
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for proto in PROTOCOLS {
        for method in [Method::GET, Method::HEAD] {
            let r = send(&s, proto, method.clone(), "/", &[("accept", html)], None).await;
            assert_eq!(r.status(), 303, "{proto:?} {method} / from a browser");
            assert_eq!(
                r.headers().get("location").and_then(|v| v.to_str().ok()),
                Some("/ui/")
            );
        }
        let r = send(&s, proto, Method::GET, "/", &[], None).await;
        assert_eq!(r.status(), 200, "{proto:?} GET / without Accept");
        assert!(r.text().await.unwrap().contains("/ui/"));
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
