//! The manifest cache never shows an old answer: a manifest pushed over a
//! tag, deleted by digest or by tag, is seen at once by the next GET and
//! HEAD, also while other clients keep reading the same manifest (which is
//! what fills the cache).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{http_request, sha256_hex, temp_dir, HttpResponse, Regproxy};
use serde_json::json;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn push_config(base: &str, repo: &str) -> (String, usize) {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let d = format!("sha256:{}", sha256_hex(config));
    let r = http_request(
        "POST",
        &format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"),
        &[],
        Some(config.to_vec()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    (d, config.len())
}

/// Pushes a manifest (distinct per `n`) under `reference`; returns its digest.
fn push_manifest(base: &str, repo: &str, reference: &str, n: u32) -> String {
    let (config, size) = push_config(base, repo);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": size},
        "layers": [],
        "annotations": {"n": n.to_string()}
    })
    .to_string();
    let r = http_request(
        "PUT",
        &format!("{base}/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", OCI_MANIFEST)],
        Some(manifest.clone().into_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    format!("sha256:{}", sha256_hex(manifest.as_bytes()))
}

fn get(base: &str, method: &str, repo: &str, reference: &str) -> HttpResponse {
    http_request(
        method,
        &format!("{base}/v2/{repo}/manifests/{reference}"),
        &[("Accept", OCI_MANIFEST)],
        None,
    )
}

fn assert_serves(base: &str, repo: &str, reference: &str, digest: &str) {
    for method in ["GET", "HEAD"] {
        let r = get(base, method, repo, reference);
        assert_eq!(r.status, 200, "{method} {reference}: {}", r.text());
        assert_eq!(
            r.header("docker-content-digest").as_deref(),
            Some(digest),
            "{method} {reference} after a change"
        );
        if method == "GET" {
            assert_eq!(format!("sha256:{}", sha256_hex(&r.body)), digest);
        }
    }
}

fn assert_gone(base: &str, repo: &str, reference: &str) {
    for method in ["GET", "HEAD"] {
        let r = get(base, method, repo, reference);
        assert_eq!(r.status, 404, "{method} {reference} after a delete");
    }
}

#[test]
fn pushed_and_deleted_manifests_are_seen_at_once() {
    let data = temp_dir("regproxy-mcache-");
    let server = Regproxy::start(data.path(), &[]);
    let base = server.url();
    let repo = "team/app";

    // Readers keep the cache warm the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (base, stop) = (base.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) && n < 5_000 {
                    let r = get(&base, "GET", "team/app", "v1");
                    assert!(r.status == 200 || r.status == 404, "{}", r.status);
                    n += 1;
                }
            })
        })
        .collect();

    for round in 0..20 {
        let d1 = push_manifest(&base, repo, "v1", round * 2);
        assert_serves(&base, repo, "v1", &d1);
        assert_serves(&base, repo, &d1, &d1);
        // Overwrite the tag: the next answer is the new manifest.
        let d2 = push_manifest(&base, repo, "v1", round * 2 + 1);
        assert_serves(&base, repo, "v1", &d2);
        assert_serves(&base, repo, &d1, &d1); // still there by digest
                                              // Delete by digest: the manifest and the tags pointing at it go.
        let r = http_request(
            "DELETE",
            &format!("{base}/v2/{repo}/manifests/{d2}"),
            &[],
            None,
        );
        assert_eq!(r.status, 202, "{}", r.text());
        assert_gone(&base, repo, &d2);
        assert_gone(&base, repo, "v1");
        // Delete by tag: only the tag goes.
        let d3 = push_manifest(&base, repo, "v1", 1000 + round);
        assert_serves(&base, repo, "v1", &d3);
        let r = http_request(
            "DELETE",
            &format!("{base}/v2/{repo}/manifests/v1"),
            &[],
            None,
        );
        assert_eq!(r.status, 202, "{}", r.text());
        assert_gone(&base, repo, "v1");
        assert_serves(&base, repo, &d3, &d3);
    }
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().expect("reader");
    }
}
