//! The base endpoint (`/v2/`), `Location` headers (relative, or from
//! trusted forwarded headers), and a clean stop.

use super::*;

async fn base_endpoint_answers_200_with_api_version(p: Proto) {
    let s = Server::start(p).await;
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

async fn location_headers_are_relative_by_default(p: Proto) {
    let s = Server::start(p).await;
    for headers in [&[][..], &FORWARDED[..]] {
        for loc in push_locations(&s, headers).await {
            assert!(loc.starts_with("/v2/loc/app/"), "Location {loc}");
        }
    }
}

async fn location_headers_follow_trusted_forwarded_headers(p: Proto) {
    let s = Server::start_with(p, true).await;
    let locs = push_locations(&s, &FORWARDED).await;
    for loc in &locs {
        assert!(
            loc.starts_with("https://registry.example:8443/v2/loc/app/"),
            "Location {loc}"
        );
    }
    assert!(locs[2].ends_with(&format!("/blobs/{EMPTY_DIGEST}")));
    // Without forwarded headers: relative, or absolute on this server.
    let own = format!("https://{}/v2/loc/app/", s.addr);
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

async fn server_stops_cleanly(p: Proto) {
    let s = Server::start(p).await;
    s.get("/v2/").send().await.expect(200);
    s.stop().await.expect("run returned an error");
}

both_protocols!(
    base_endpoint_answers_200_with_api_version,
    location_headers_are_relative_by_default,
    location_headers_follow_trusted_forwarded_headers,
    server_stops_cleanly,
);
