//! regproxy on a three-node Garage cluster (replication factor 3, quorum
//! two) started by the test on loopback, with nodes killed under it:
//!
//! - one node of three down (kill -9): pull back identical, push a new
//!   image, list tags, `regproxy gc --dry-run` and a real collection all
//!   keep working; the node restarted serves again (a second regproxy
//!   through the restarted node pulls both images);
//! - two of three down: no quorum; every request is answered quickly with
//!   503 `UNAVAILABLE` and a hint (never 500, never a hang), `/readyz`
//!   says why, and `regproxy gc` fails with a hint about the store.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const BUCKET: &str = "registry";
const REPO: &str = "team/app";
/// What an operator is told when the store answers 503 (Garage: fewer
/// nodes up than its quorum).
const NO_QUORUM_HINT: &str = "hint: the store answered but cannot serve";

fn config_via(cluster: &GarageCluster, via: usize, dir: &Path) -> std::path::PathBuf {
    let creds = cluster.credentials_file(dir);
    let yaml = format!(
        "tls:\n  enabled: false\nauth:\n  enabled: false\n{}",
        cluster.storage_yaml(via, BUCKET, &creds)
    );
    let sub = dir.join(format!("via-{via}"));
    std::fs::create_dir_all(&sub).unwrap();
    write_config(&sub, &yaml)
}

fn tags(url: &str) -> Vec<String> {
    let r = http_get(&format!("{url}/v2/{REPO}/tags/list"));
    assert_eq!(r.status, 200, "tags/list: {}", r.text());
    let mut t: Vec<String> = r.json()["tags"]
        .as_array()
        .expect("tags array")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    t.sort();
    t
}

/// `regproxy gc --config CONFIG ARGS`.
fn gc(config: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regproxy"));
    cmd.args(["gc", "--config", path_str(config)]).args(args);
    run(&mut cmd, Duration::from_secs(120))
}

#[test]
fn one_node_of_three_down_changes_nothing_two_down_is_a_quick_503() {
    let mut cluster = GarageCluster::start(BUCKET);
    let dir = temp_dir("s3-cluster-");
    // regproxy talks to node 0; nodes 1 and 2 are the ones killed.
    let config = config_via(&cluster, 0, dir.path());
    let a = serve_loopback(&config);
    let url = a.url();

    // 6 MiB: over one multipart part, so the layer is a multipart object.
    let v1 = RawImage::new(vec![random_bytes(6 << 20), random_bytes(300_000)], None);
    push_image(&url, REPO, Some("v1"), &v1);

    // One node of three down: quorum (2) holds.
    cluster.kill9(2);
    pull_and_verify(&url, REPO, "v1", &v1);
    let v2 = RawImage::random(2, 200_000);
    push_image(&url, REPO, Some("v2"), &v2);
    pull_and_verify(&url, REPO, "v2", &v2);
    assert_eq!(tags(&url), vec!["v1", "v2"]);
    // Garbage for the collection: an untagged manifest's own layer.
    let junk = RawImage::random(1, 50_000);
    push_image(&url, REPO, None, &junk);
    delete_manifest(&url, REPO, &junk.digest);
    let out = gc(&config, &["--dry-run", "--grace", "0s", "--json"]);
    assert!(out.status.success(), "gc --dry-run: {}", output_text(&out));
    let dry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = gc(&config, &["--grace", "0s", "--json"]);
    assert!(out.status.success(), "gc: {}", output_text(&out));
    let real: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        dry["total"], real["total"],
        "the dry run announced what the collection removed"
    );
    assert_eq!(
        http_request(
            "HEAD",
            &format!("{url}/v2/{REPO}/blobs/{}", junk.blobs[1].0),
            &[],
            None
        )
        .status,
        404,
        "the collection removed the unreferenced layer: {real}"
    );
    pull_and_verify(&url, REPO, "v1", &v1);

    // The node comes back and serves: a second instance through it.
    cluster.restart(2);
    cluster
        .wait_healthy(3)
        .unwrap_or_else(|e| panic!("after the restart: {e}"));
    let b = serve_loopback(&config_via(&cluster, 2, dir.path()));
    pull_and_verify(&b.url(), REPO, "v1", &v1);
    pull_and_verify(&b.url(), REPO, "v2", &v2);
    assert_eq!(tags(&b.url()), vec!["v1", "v2"]);
    drop(b);

    // Two of three down: no quorum. Quick 503 UNAVAILABLE with a hint.
    cluster.kill9(1);
    cluster.kill9(2);
    let v3 = RawImage::random(1, 1000);
    let (cfg_d, cfg_b) = &v3.blobs[0];
    let attempts: Vec<(&str, String, Option<Vec<u8>>)> = vec![
        ("GET", format!("{url}/v2/{REPO}/manifests/v1"), None),
        (
            "GET",
            format!("{url}/v2/{REPO}/blobs/{}", v1.blobs[1].0),
            None,
        ),
        (
            "HEAD",
            format!("{url}/v2/{REPO}/blobs/{}", v1.blobs[1].0),
            None,
        ),
        ("GET", format!("{url}/v2/{REPO}/tags/list"), None),
        (
            "POST",
            format!("{url}/v2/{REPO}/blobs/uploads/?digest={cfg_d}"),
            Some(cfg_b.clone()),
        ),
        ("POST", format!("{url}/v2/{REPO}/blobs/uploads/"), None),
        (
            "PUT",
            format!("{url}/v2/{REPO}/manifests/v3"),
            Some(v3.manifest.clone()),
        ),
    ];
    for (method, u, body) in attempts {
        let started = Instant::now();
        let r = http_request(method, &u, &[("Content-Type", RAW_MANIFEST)], body);
        let took = started.elapsed();
        assert_eq!(
            r.status,
            503,
            "{method} {u} with two nodes down: {}",
            r.text()
        );
        if method != "HEAD" {
            let e = &r.json()["errors"][0];
            assert_eq!(e["code"], "UNAVAILABLE", "{method} {u}: {}", r.text());
            assert!(
                e["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("retry later"),
                "{method} {u}: {}",
                r.text()
            );
        }
        assert!(
            took < Duration::from_secs(25),
            "{method} {u} took {took:?}: a store without quorum must fail fast"
        );
    }
    // The operator's side: /readyz, the log and `regproxy gc` say that the
    // store answered but cannot serve, and what to check (not "did not
    // answer", not the data directory's permissions). Collected, so one
    // run shows every gap.
    let mut gaps = Vec::new();
    let ready = http_get(&a.admin_url("/readyz"));
    if ready.status != 503 || !ready.text().contains(NO_QUORUM_HINT) {
        gaps.push(format!("/readyz: {} {}", ready.status, ready.text()));
    }
    let logged = a.logs();
    let failed_lines: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("request failed"))
        .collect();
    if failed_lines.is_empty() || !failed_lines.iter().all(|l| l.contains(NO_QUORUM_HINT)) {
        gaps.push(format!("log: {}", failed_lines.join("\n")));
    }
    let out = gc(&config, &["--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !err.contains(NO_QUORUM_HINT) {
        gaps.push(format!("gc --dry-run: {}", output_text(&out)));
    }
    assert!(
        gaps.is_empty(),
        "without quorum, no `{NO_QUORUM_HINT}`:\n{}",
        gaps.join("\n\n")
    );
}
