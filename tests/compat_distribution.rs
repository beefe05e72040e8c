//! Storage-layout compatibility with CNCF Distribution (the reference
//! registry), both directions: images pushed into one server's storage root
//! are served byte for byte by the other, with the same tags and catalog.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const KIB: usize = 1024;

/// An image pushed to a registry under `repo:tag`.
struct Pushed {
    repo: &'static str,
    tag: &'static str,
    image: OciImage,
}

#[test]
fn regproxy_serves_what_distribution_stored() {
    let root = temp_dir("compat-root-");
    let work = temp_dir("compat-work-");
    let skopeo = Skopeo::new();

    let distribution = Distribution::start(root.path());
    let pushed = push_fixtures(&skopeo, &distribution.host(), work.path());
    distribution.stop();

    let registry = Regproxy::start(root.path(), &[]);
    pull_back_and_compare(
        &skopeo,
        &registry.host(),
        &pushed,
        &work.path().join("back"),
    );
    assert_tags(&registry.url(), "team/multi", &["v1"]);
    assert_tags(&registry.url(), "team/single", &["latest", "v1"]);
}

#[test]
fn distribution_serves_what_regproxy_stored() {
    let root = temp_dir("compat-root-");
    let work = temp_dir("compat-work-");
    let skopeo = Skopeo::new();

    let mut registry = Regproxy::start(root.path(), &[]);
    let pushed = push_fixtures(&skopeo, &registry.host(), work.path());
    registry.terminate(Duration::from_secs(10));
    drop(registry);

    let distribution = Distribution::start(root.path());
    pull_back_and_compare(
        &skopeo,
        &distribution.host(),
        &pushed,
        &work.path().join("back"),
    );
    assert_tags(&distribution.url(), "team/multi", &["v1"]);
    assert_tags(&distribution.url(), "team/single", &["latest", "v1"]);

    let catalog = http_get(&format!("{}/v2/_catalog", distribution.url()));
    assert_eq!(catalog.status, 200, "catalog: {}", catalog.text());
    assert_eq!(
        catalog.json(),
        json!({"repositories": ["team/multi", "team/single"]}),
        "Distribution's catalog of regproxy's storage"
    );
}

/// Pushes a multi-arch index (team/multi:v1) and a single-platform image
/// under two tags (team/single:v1 and :latest) with `skopeo copy --all`.
fn push_fixtures(skopeo: &Skopeo, host: &str, work: &Path) -> Vec<Pushed> {
    let multi = write_oci_multiarch(&work.join("multi"), "v1", 128 * KIB);
    let single = write_oci_single(&work.join("single"), "v1", 128 * KIB);
    let pushed = vec![
        Pushed {
            repo: "team/multi",
            tag: "v1",
            image: multi,
        },
        Pushed {
            repo: "team/single",
            tag: "v1",
            image: single.clone(),
        },
        Pushed {
            repo: "team/single",
            tag: "latest",
            image: single,
        },
    ];
    for p in &pushed {
        let dest = format!("docker://{host}/{}:{}", p.repo, p.tag);
        skopeo.copy(&p.image.skopeo_ref(), &dest, true);
    }
    pushed
}

/// Copies every pushed image back out of `host` into fresh OCI layouts and
/// checks manifests and blobs are byte-identical to what was pushed.
fn pull_back_and_compare(skopeo: &Skopeo, host: &str, pushed: &[Pushed], back: &Path) {
    for (i, p) in pushed.iter().enumerate() {
        let remote = format!("{host}/{}:{}", p.repo, p.tag);
        let raw = skopeo.inspect_raw(&remote);
        assert!(
            raw == p.image.manifest,
            "{remote}: served manifest differs from the pushed one:\n{}",
            String::from_utf8_lossy(&raw)
        );
        let dir = back.join(format!("image-{i}"));
        skopeo.copy(
            &format!("docker://{remote}"),
            &format!("oci:{}:{}", dir.display(), p.tag),
            true,
        );
        let compared = assert_same_oci_image(&p.image.dir, &p.image.tag, &dir, p.tag);
        assert_eq!(compared, p.image.blobs.len(), "{remote}: blob count");

        // The manifest by digest, with its media type and digest header.
        let url = format!("http://{host}/v2/{}/manifests/{}", p.repo, p.image.digest);
        let resp = http_request("GET", &url, &[("Accept", &p.image.media_type)], None);
        assert_eq!(resp.status, 200, "GET {url}: {}", resp.text());
        assert_eq!(
            resp.header("content-type"),
            Some(p.image.media_type.clone())
        );
        assert_eq!(
            resp.header("docker-content-digest"),
            Some(p.image.digest.clone())
        );
        assert!(resp.body == p.image.manifest, "GET {url}: body differs");
    }
}

fn assert_tags(base_url: &str, repo: &str, expected: &[&str]) {
    let url = format!("{base_url}/v2/{repo}/tags/list");
    let resp = http_get(&url);
    assert_eq!(resp.status, 200, "GET {url}: {}", resp.text());
    let doc = resp.json();
    assert_eq!(doc["name"].as_str(), Some(repo), "GET {url}: {doc}");
    let mut tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("GET {url}: no tags array: {doc}"))
        .iter()
        .map(|t: &Value| t.as_str().unwrap_or_default())
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, expected, "GET {url}");
}
