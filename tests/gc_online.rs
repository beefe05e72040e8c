//! Garbage collection inside `serve` while real clients push, and the purge
//! of abandoned uploads after a `kill -9`.
//!
//! The collector runs every second with a short grace period while Docker,
//! skopeo and raw-HTTP clients push new images, re-push deleted ones (whose blobs
//! the collector is deleting at the same time) and delete again; afterwards
//! every image pushed last is pulled back and checked against its digests,
//! and the deleted content is gone from disk.

mod common;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const KIB: usize = 1024;
/// Blobs younger than this are kept by the collector in these tests. Every
/// push here takes far less (a push taking longer than the grace period is
/// what the grace period does not protect).
const GRACE_SECS: u64 = 8;

fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!("tls:\n  enabled: false\nauth:\n  enabled: false\n{extra}"),
    )
}

fn blob_on_disk(root: &Path, digest: &str) -> bool {
    let hex = digest.trim_start_matches("sha256:");
    root.join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
        .is_file()
}

#[test]
fn gc_during_concurrent_pushes_loses_nothing() {
    let work = temp_dir("gc-online-");
    let root = work.path().join("data");
    let cfg = config(
        work.path(),
        &format!("gc:\n  interval: 1s\n  grace: {GRACE_SECS}s\n"),
    );
    let server = serve_config(&cfg, &root);
    let url = server.url();
    // Two Docker images sharing their busybox layer, built beforehand.
    let engine = Dockerd::start();
    let docker_images: Vec<(String, String)> = (0..2)
        .map(|n| {
            let ctx = make_build_context(&engine.dir().join(format!("ctx{n}")), 2, 256 * KIB);
            let local = format!("local/app{n}:v1");
            let id = engine.build(&ctx.dir, &local);
            let remote = format!("{}/docker/app{n}:v1", server.host());
            engine.docker_ok(["tag", &local, &remote]);
            engine.docker_ok(["rmi", &local]);
            (remote, id)
        })
        .collect();

    // Content to be collected: pushed, then deleted.
    let victims: Vec<RawImage> = (0..6).map(|_| RawImage::random(2, 256 * KIB)).collect();
    for (i, v) in victims.iter().enumerate() {
        push_image(&url, &format!("victim/{i}"), Some("v1"), v);
        delete_manifest(&url, &format!("victim/{i}"), &v.digest);
    }
    // Start the pushes shortly before the victims become collectable, so
    // the collector deletes them while the clients push.
    thread::sleep(Duration::from_secs(GRACE_SECS - 2));
    let started = Instant::now();

    let skopeo_pushers: Vec<_> = (0..2)
        .map(|t| {
            let host = server.host();
            let dir = work.path().join(format!("skopeo-{t}"));
            thread::spawn(move || {
                let skopeo = Skopeo::new();
                let mut pushed = Vec::new();
                for n in 0..3 {
                    let img = if n % 2 == 0 {
                        write_oci_multiarch(&dir.join(format!("img{n}")), "v1", 128 * KIB)
                    } else {
                        write_oci_single(&dir.join(format!("img{n}")), "v1", 128 * KIB)
                    };
                    let dest = format!("docker://{host}/skopeo/t{t}:n{n}");
                    skopeo.copy(&img.skopeo_ref(), &dest, true);
                    pushed.push((format!("skopeo/t{t}"), format!("n{n}"), img));
                }
                pushed
            })
        })
        .collect();
    let raw_pushers: Vec<_> = (0..3)
        .map(|t| {
            let url = url.clone();
            thread::spawn(move || {
                let mut pushed = Vec::new();
                for n in 0..8 {
                    let img = RawImage::random(2, 64 * KIB + n * KIB);
                    let repo = format!("raw/t{t}");
                    push_image(&url, &repo, Some(&format!("n{n}")), &img);
                    pushed.push((repo, format!("n{n}"), img));
                }
                pushed
            })
        })
        .collect();
    // Re-pushes of deleted images: `HEAD` finds (or not) blobs the
    // collector wants to delete, then the manifest references them.
    let revived: Vec<RawImage> = victims[..2].to_vec();
    let repushers: Vec<_> = revived
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (url, v) = (url.clone(), v.clone());
            thread::spawn(move || {
                let repo = format!("victim/{i}");
                for round in 0..6 {
                    if round > 0 {
                        delete_manifest(&url, &repo, &v.digest);
                        thread::sleep(Duration::from_millis(700));
                    }
                    push_image(&url, &repo, Some("v1"), &v);
                }
            })
        })
        .collect();

    // Docker pushes from this thread meanwhile.
    for (remote, _) in &docker_images {
        engine.docker_ok(["push", remote]);
    }

    let mut images = Vec::new();
    for h in skopeo_pushers {
        images.extend(
            h.join()
                .expect("a skopeo pusher failed")
                .into_iter()
                .map(|(r, t, i)| (r, t, Err(i))),
        );
    }
    for h in raw_pushers {
        images.extend(
            h.join()
                .expect("a raw pusher failed")
                .into_iter()
                .map(|(r, t, i)| (r, t, Ok(i))),
        );
    }
    for h in repushers {
        h.join().expect("a re-pusher failed");
    }
    eprintln!("pushes done after {:?}", started.elapsed());

    // The collector frees what stayed deleted (bounded wait).
    let gone = |v: &RawImage| {
        v.blobs.iter().all(|(d, _)| !blob_on_disk(&root, d)) && !blob_on_disk(&root, &v.digest)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !victims[2..].iter().all(gone) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
    }
    assert!(
        victims[2..].iter().all(gone),
        "the deleted images were not collected:\n{}",
        server.logs()
    );
    // Let it run once more over everything just pushed.
    thread::sleep(Duration::from_secs(2));
    let logs = server.logs();
    let runs = logs.matches("gc: freed").count();
    eprintln!(
        "{runs} collection(s) freed something; log:\n{}",
        logs.lines()
            .filter(|l| l.contains("gc:"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(runs > 0);

    // Nothing the clients pushed last is lost.
    for (i, v) in revived.iter().enumerate() {
        pull_and_verify(&url, &format!("victim/{i}"), "v1", v);
    }
    for (remote, id) in &docker_images {
        engine.docker_ok(["rmi", remote]);
        engine.docker_ok(["pull", remote]);
        assert_eq!(
            &engine.inspect(remote, "{{.Id}}"),
            id,
            "docker pulled {remote} back"
        );
    }
    let skopeo = Skopeo::new();
    let back = work.path().join("back");
    for (repo, tag, img) in &images {
        match img {
            Ok(raw) => pull_and_verify(&url, repo, tag, raw),
            Err(oci) => {
                let dest = back.join(repo.replace('/', "_")).join(tag);
                skopeo.copy(
                    &format!("docker://{}/{repo}:{tag}", server.host()),
                    &format!("oci:{}:{tag}", dest.display()),
                    true,
                );
                assert_same_oci_image(&oci.dir, &oci.tag, &dest, tag);
            }
        }
    }
    eprintln!(
        "{} images pulled back intact",
        images.len() + revived.len() + docker_images.len()
    );
}

/// Starts a chunked upload and sends `data` as its first chunk; returns its URL.
fn start_upload(url: &str, repo: &str, data: &[u8]) -> String {
    let r = http_request(
        "POST",
        &format!("{url}/v2/{repo}/blobs/uploads/"),
        &[],
        None,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let location = format!("{url}{}", r.header("location").expect("Location"));
    patch(&location, 0, data);
    location
}

fn patch(location: &str, offset: usize, data: &[u8]) {
    let range = format!("{offset}-{}", offset + data.len() - 1);
    let r = http_request(
        "PATCH",
        location,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", &range),
        ],
        Some(data.to_vec()),
    );
    assert_eq!(r.status, 202, "PATCH {location}: {}", r.text());
}

fn upload_dirs(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("docker/registry/v2/repositories")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == "_uploads") {
                out.extend(
                    std::fs::read_dir(&p)
                        .expect("read _uploads")
                        .flatten()
                        .map(|e| e.path()),
                );
            } else if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn abandoned_uploads_are_purged_at_start_and_periodically() {
    let work = temp_dir("gc-uploads-");
    let root = work.path().join("data");
    let max_idle = 3;
    let cfg = config(work.path(), &format!("uploads:\n  max_idle: {max_idle}s\n"));

    // Uploads cut by a kill -9 (two repositories that never got a manifest).
    let mut server = serve_config(&cfg, &root);
    let url = server.url();
    let mut left = 0;
    for repo in ["crashed/one", "crashed/two", "crashed/two"] {
        let data = random_bytes(512 * KIB);
        start_upload(&url, repo, &data);
        left += data.len();
    }
    server.kill9();
    let dirs = upload_dirs(&root);
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    assert!(dirs.iter().all(|d| d.join("data").is_file()));
    thread::sleep(Duration::from_secs(max_idle + 1));

    // The next start purges them and says what it freed.
    let server = serve_config(&cfg, &root);
    let url = server.url();
    let line = format!("purged 3 abandoned upload(s), freed {}", "1.5 MiB");
    assert!(
        server.wait_for_log(&line, Duration::from_secs(20)),
        "no `{line}` ({left} bytes) in:\n{}",
        server.logs()
    );
    assert!(upload_dirs(&root).is_empty(), "{:?}", upload_dirs(&root));

    // An upload in progress is never purged, however often the purge runs.
    let chunk = random_bytes(64 * KIB);
    let location = start_upload(&url, "fresh/app", &chunk);
    let mut sent = chunk.clone();
    for _ in 0..12 {
        thread::sleep(Duration::from_millis(500));
        let more = random_bytes(64 * KIB);
        patch(&location, sent.len(), &more);
        sent.extend_from_slice(&more);
    }
    let digest = digest_of(&sent);
    let r = http_request("PUT", &format!("{location}?digest={digest}"), &[], None);
    assert_eq!(r.status, 201, "finishing the live upload: {}", r.text());
    let blob = http_request(
        "GET",
        &format!("{url}/v2/fresh/app/blobs/{digest}"),
        &[],
        None,
    );
    assert_eq!(digest_of(&blob.body), digest);

    // One left idle is purged by the periodic run.
    start_upload(&url, "fresh/app", &chunk);
    assert_eq!(upload_dirs(&root).len(), 1);
    let line = "purged 1 abandoned upload(s), freed 64.0 KiB";
    assert!(
        server.wait_for_log(line, Duration::from_secs(30)),
        "no `{line}` in:\n{}",
        server.logs()
    );
    assert!(upload_dirs(&root).is_empty());
}
