//! Garbage collection, `du` and the purge of abandoned uploads, against the
//! real server and the real `regproxy gc`/`du` commands on real files:
//! deleted content is freed (bytes on disk go away), referenced content
//! never is (everything is pulled back and checked against its digest), a
//! dry run deletes nothing, `--untagged` keeps index children and
//! referrers, and CNCF Distribution still serves what a collection left.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::Value;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Runs `regproxy ARGS` and returns its output (panics unless it exits 0).
fn regproxy(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regproxy"));
    cmd.args(args)
        .env_remove("REGPROXY_CONFIG")
        .env("RUST_LOG", "warn");
    let out = run(&mut cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "regproxy {args:?} failed:\n{}",
        output_text(&out)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `regproxy gc --data ROOT --json EXTRA...` as JSON.
fn gc_json(root: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["gc", "--data", path_str(root), "--json"];
    args.extend_from_slice(extra);
    let out = regproxy(&args);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("gc --json printed no JSON ({e}):\n{}", output_text(&out)))
}

/// Every file under `dir` with its size: the state of the storage.
fn files(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let e = e.expect("dir entry");
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .expect("under dir")
                    .display()
                    .to_string();
                out.insert(rel, meta.len());
            }
        }
    }
    out
}

fn v2(root: &Path) -> std::path::PathBuf {
    root.join("docker/registry/v2")
}

/// Bytes of every blob file on disk.
fn blob_bytes(root: &Path) -> u64 {
    files(&v2(root).join("blobs")).values().sum()
}

fn blob_on_disk(root: &Path, digest: &str) -> bool {
    let hex = digest.trim_start_matches("sha256:");
    v2(root)
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
        .is_file()
}

fn total(report: &Value) -> (u64, u64) {
    (
        report["total"]["blobs"].as_u64().unwrap(),
        report["total"]["bytes"].as_u64().unwrap(),
    )
}

fn repo_line<'a>(report: &'a Value, repo: &str) -> Option<&'a Value> {
    report["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["repository"] == repo)
}

#[test]
fn gc_frees_deleted_content_and_keeps_what_is_referenced() {
    let root = temp_dir("gc-root-");
    let server = Regproxy::start(root.path(), &[]);
    let url = server.url();
    let shared = random_bytes(MIB);
    let a = RawImage::new(vec![shared.clone(), random_bytes(2 * MIB)], None);
    let b = RawImage::new(vec![shared.clone(), random_bytes(MIB)], None);
    let old = RawImage::new(vec![random_bytes(3 * MIB)], None);
    push_image(&url, "team/a", Some("v1"), &a);
    push_image(&url, "team/b", Some("v1"), &b);
    push_image(&url, "team/a", Some("old"), &old);
    delete_manifest(&url, "team/a", &old.digest);
    let freed_bytes = old.bytes();

    // Everything is younger than the default grace period (1 h): kept.
    let young = gc_json(root.path(), &[]);
    assert_eq!(total(&young), (0, 0), "{young}");
    assert_eq!(
        young["kept_young"], 3,
        "the deleted image's 3 blobs are young: {young}"
    );

    // A dry run reports what a real run frees, and changes no file.
    let before = files(root.path());
    let dry = gc_json(root.path(), &["--grace", "0s", "--dry-run"]);
    assert_eq!(files(root.path()), before, "a dry run changed the storage");
    assert_eq!(total(&dry), (3, freed_bytes), "{dry}");
    let text = stdout(&regproxy(&[
        "gc",
        "--data",
        path_str(root.path()),
        "--grace",
        "0s",
        "--dry-run",
    ]));
    eprintln!("gc --dry-run:\n{text}");
    assert!(
        text.contains("team/a: would free 2 blob(s), 3.0 MiB"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "total: would free 3 blob(s), 3.0 MiB ({freed_bytes} bytes)"
        )),
        "{text}"
    );

    let out = regproxy(&["gc", "--data", path_str(root.path()), "--grace", "0s"]);
    let text = stdout(&out);
    eprintln!("gc:\n{text}");
    assert!(text.contains("team/a: freed 2 blob(s), 3.0 MiB"), "{text}");
    assert!(
        text.contains(&format!(
            "total: freed 3 blob(s), 3.0 MiB ({freed_bytes} bytes)"
        )),
        "{text}"
    );
    let after = files(root.path());
    let on_disk_before: u64 = before
        .iter()
        .filter(|(p, _)| p.contains("/blobs/"))
        .map(|(_, s)| s)
        .sum();
    assert_eq!(
        on_disk_before - blob_bytes(root.path()),
        freed_bytes,
        "the bytes left the disk"
    );
    for (d, _) in &old.blobs {
        assert!(!blob_on_disk(root.path(), d), "blob {d} is still on disk");
        let link = format!(
            "docker/registry/v2/repositories/team/a/_layers/sha256/{}/link",
            &d[7..]
        );
        assert!(
            !after.contains_key(&link),
            "its layer link {link} is still there"
        );
    }
    assert!(!blob_on_disk(root.path(), &old.digest));

    // Referenced content is all there, from regproxy...
    pull_and_verify(&url, "team/a", "v1", &a);
    pull_and_verify(&url, "team/b", "v1", &b);
    assert_eq!(manifest_status(&url, "team/a", &old.digest), 404);
    // ...a second run frees nothing...
    assert_eq!(total(&gc_json(root.path(), &["--grace", "0s"])), (0, 0));
    drop(server);

    // ...and CNCF Distribution serves what remains.
    let distribution = Distribution::start(root.path());
    pull_and_verify(&distribution.url(), "team/a", "v1", &a);
    pull_and_verify(&distribution.url(), "team/b", "v1", &b);
    let tags = http_get(&format!("{}/v2/team/a/tags/list", distribution.url()));
    assert_eq!(
        tags.json()["tags"],
        serde_json::json!(["v1"]),
        "{}",
        tags.text()
    );
    distribution.stop();
}

#[test]
fn untagged_removes_only_what_no_tag_reaches() {
    let root = temp_dir("gc-untagged-");
    let server = Regproxy::start(root.path(), &[]);
    let url = server.url();
    let repo = "team/u";
    let tagged = RawImage::random(1, 256 * KIB);
    let untagged = RawImage::random(1, 512 * KIB);
    let retagged = RawImage::random(1, 128 * KIB);
    let child1 = RawImage::random(1, 64 * KIB);
    let child2 = RawImage::random(1, 64 * KIB);
    let index = RawImage::index(&[child1.clone(), child2.clone()]);
    let sbom = RawImage::new(vec![random_bytes(8 * KIB)], Some(&tagged));
    let orphan_sbom = RawImage::new(vec![random_bytes(16 * KIB)], Some(&untagged));
    push_image(&url, repo, Some("v1"), &tagged);
    push_image(&url, repo, None, &untagged);
    push_image(&url, repo, Some("v2"), &retagged);
    push_image(&url, repo, None, &child1);
    push_image(&url, repo, None, &child2);
    push_image(&url, repo, Some("multi"), &index);
    push_image(&url, repo, None, &sbom);
    push_image(&url, repo, None, &orphan_sbom);
    // Deleting a tag leaves its manifest untagged.
    delete_manifest(&url, repo, "v2");

    // Without --untagged every linked manifest is kept.
    assert_eq!(total(&gc_json(root.path(), &["--grace", "0s"])), (0, 0));

    let dry = gc_json(root.path(), &["--grace", "0s", "--untagged", "--dry-run"]);
    let report = gc_json(root.path(), &["--grace", "0s", "--untagged"]);
    eprintln!("gc --untagged: {report}");
    let gone = [&untagged, &retagged, &orphan_sbom];
    let blobs: u64 = gone.iter().map(|i| 1 + i.blobs.len() as u64).sum();
    let bytes: u64 = gone.iter().map(|i| i.bytes()).sum();
    assert_eq!(total(&report), (blobs, bytes), "{report}");
    assert_eq!(
        total(&dry),
        total(&report),
        "the dry run reported the same: {dry}"
    );
    assert_eq!(
        repo_line(&report, repo).unwrap()["manifests"],
        3,
        "{report}"
    );
    for img in gone {
        assert_eq!(manifest_status(&url, repo, &img.digest), 404);
        for (d, _) in &img.blobs {
            assert!(
                !blob_on_disk(root.path(), d),
                "{d} of an untagged image is on disk"
            );
        }
    }
    pull_and_verify(&url, repo, "v1", &tagged);
    pull_and_verify(&url, repo, "multi", &index);
    pull_and_verify(&url, repo, &child1.digest, &child1);
    pull_and_verify(&url, repo, &child2.digest, &child2);
    pull_and_verify(&url, repo, &sbom.digest, &sbom);
    let referrers = http_get(&format!("{url}/v2/{repo}/referrers/{}", tagged.digest)).json();
    assert_eq!(
        referrers["manifests"][0]["digest"],
        sbom.digest.as_str(),
        "{referrers}"
    );
    let referrers = http_get(&format!("{url}/v2/{repo}/referrers/{}", untagged.digest)).json();
    assert_eq!(referrers["manifests"], serde_json::json!([]), "{referrers}");
}

#[test]
fn du_shows_storage_per_repository() {
    let root = temp_dir("gc-du-");
    let server = Regproxy::start(root.path(), &[]);
    let url = server.url();
    let shared = random_bytes(2 * MIB);
    let a = RawImage::new(vec![shared.clone(), random_bytes(MIB)], None);
    let b = RawImage::new(vec![shared.clone()], None);
    push_image(&url, "small", Some("v1"), &b);
    push_image(&url, "big/app", Some("v1"), &a);
    let loose = random_bytes(100 * KIB);
    push_blob(&url, "small", &digest_of(&loose), &loose);

    let out = regproxy(&["du", "--data", path_str(root.path())]);
    let text = stdout(&out);
    eprintln!("du:\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("3.0 MiB") && lines[0].contains("big/app"),
        "largest first: {text}"
    );
    assert!(
        lines[1].contains("2.0 MiB") && lines[1].contains("small"),
        "{text}"
    );
    assert!(
        lines[2].contains("3.0 MiB") && lines[2].contains("total"),
        "shared counted once: {text}"
    );
    assert!(
        lines[3].contains("100.0 KiB") && lines[3].contains("unreferenced"),
        "{text}"
    );

    let json: Value = serde_json::from_slice(
        &regproxy(&["du", "--data", path_str(root.path()), "--json"]).stdout,
    )
    .unwrap();
    assert_eq!(json["repositories"][0]["bytes"], a.bytes(), "{json}");
    assert_eq!(json["repositories"][1]["bytes"], b.bytes(), "{json}");
    assert_eq!(
        json["total_bytes"],
        a.bytes() + b.bytes() - shared.len() as u64,
        "{json}"
    );
    assert_eq!(json["unreferenced_bytes"], loose.len() as u64);
}

#[test]
fn gc_stops_rather_than_guess_what_an_unreadable_tag_keeps() {
    let root = temp_dir("gc-corrupt-");
    let server = Regproxy::start(root.path(), &[]);
    let url = server.url();
    let img = RawImage::random(1, 64 * KIB);
    push_image(&url, "team/a", Some("v1"), &img);
    drop(server);
    // A tag directory whose name is no valid tag (copied in by hand, say).
    let tags = v2(root.path()).join("repositories/team/a/_manifests/tags");
    std::fs::rename(tags.join("v1"), tags.join("bad tag!")).expect("rename the tag");
    let before = files(root.path());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regproxy"));
    cmd.args([
        "gc",
        "--untagged",
        "--grace",
        "0s",
        "--data",
        path_str(root.path()),
    ]);
    let out = run(&mut cmd, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        err.contains("\"bad tag!\" in team/a is not a valid tag"),
        "{err}"
    );
    assert!(
        err.contains("hint: the collection stopped before its sweep"),
        "{err}"
    );
    assert_eq!(files(root.path()), before, "nothing was deleted");
}
