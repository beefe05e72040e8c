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

fn delete(url: &str, repo: &str, reference: &str) {
    let r = http_request(
        "DELETE",
        &format!("{url}/v2/{repo}/manifests/{reference}"),
        &[],
        None,
    );
    assert_eq!(r.status, 202, "DELETE {repo}:{reference}: {}", r.text());
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
        delete(&url, &format!("victim/{i}"), &v.digest);
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
                        delete(&url, &repo, &v.digest);
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

/// `regproxy gc --data ROOT --json EXTRA...` as JSON (the server may run:
/// only dry runs are made with it here).
fn cli_gc_json(root: &Path, extra: &[&str]) -> serde_json::Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_regproxy"));
    cmd.args(["gc", "--data", path_str(root), "--json"])
        .args(extra)
        .env_remove("REGPROXY_CONFIG")
        .env("RUST_LOG", "warn");
    let out = run_ok(&mut cmd, Duration::from_secs(120));
    serde_json::from_slice(&out.stdout).expect("gc --json prints JSON")
}

/// Every file under `dir` with its size.
fn files(dir: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path().display().to_string(), meta.len());
            }
        }
    }
    out
}

/// What a report says was (or would be) freed, per repository and in total.
fn freed(report: &serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    (report["repositories"].clone(), report["total"].clone())
}

fn admin_gc(server: &Regproxy, method: &str, query: &str) -> HttpResponse {
    http_request(method, &server.admin_url(&format!("/gc{query}")), &[], None)
}

#[test]
fn admin_gc_endpoint_frees_what_regproxy_gc_would_and_runs_one_at_a_time() {
    let work = temp_dir("gc-admin-");
    let root = work.path().join("data");
    let cfg = config(work.path(), "gc:\n  interval: off\n  grace: 0s\n");
    let server = serve_config(&cfg, &root);
    let url = server.url();

    // Before any collection: 404 that says how to run one.
    let none = admin_gc(&server, "GET", "");
    assert_eq!(none.status, 404, "{}", none.text());
    assert!(none.text().contains("POST /gc"), "{}", none.text());
    let wrong = admin_gc(&server, "DELETE", "");
    assert_eq!(wrong.status, 405, "{}", wrong.text());
    assert_eq!(wrong.header("allow").as_deref(), Some("GET, HEAD, POST"));
    let bad = admin_gc(&server, "POST", "?dry_run=maybe");
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("hint"), "{}", bad.text());

    let kept = RawImage::random(2, 256 * KIB);
    let gone = RawImage::random(2, 300 * KIB);
    push_image(&url, "team/kept", Some("v1"), &kept);
    push_image(&url, "team/gone", Some("v1"), &gone);
    delete(&url, "team/gone", &gone.digest);

    // A dry run frees nothing and reports what `regproxy gc` would free.
    let before = files(&root);
    let dry = admin_gc(&server, "POST", "?dry_run=true");
    assert_eq!(dry.status, 200, "{}", dry.text());
    let dry = dry.json();
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(files(&root), before, "a dry run changed the storage");
    let cli = cli_gc_json(&root, &["--dry-run", "--grace", "0s"]);
    assert_eq!(freed(&dry), freed(&cli), "admin: {dry}\ncli: {cli}");
    // Its layers and config, and its manifest.
    assert_eq!(dry["total"]["blobs"], gone.blobs.len() + 1, "{dry}");
    assert_eq!(dry["total"]["bytes"], gone.bytes(), "{dry}");
    // GET answers the last report.
    let last = admin_gc(&server, "GET", "");
    assert_eq!(last.status, 200, "{}", last.text());
    assert_eq!(last.json(), dry);

    // The real run frees exactly that.
    let real = admin_gc(&server, "POST", "");
    assert_eq!(real.status, 200, "{}", real.text());
    let real = real.json();
    assert_eq!(real["dry_run"], false, "{real}");
    assert_eq!(freed(&real), freed(&dry), "{real}");
    for (d, _) in &gone.blobs {
        assert!(!blob_on_disk(&root, d), "blob {d} is still on disk");
    }
    assert!(!blob_on_disk(&root, &gone.digest));
    pull_and_verify(&url, "team/kept", "v1", &kept);
    assert_eq!(admin_gc(&server, "GET", "").json(), real);

    // One at a time: a collection blocked reading a manifest (a FIFO in
    // place of its blob file) holds the lock; a second POST answers 409 at
    // once, and the first finishes when the FIFO delivers the manifest.
    let hex = kept.digest.trim_start_matches("sha256:");
    let data = root
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let manifest = std::fs::read(&data).expect("read the manifest blob");
    std::fs::remove_file(&data).expect("remove the manifest blob");
    let c = std::ffi::CString::new(path_str(&data)).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path that lives for the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let first = {
        let admin = server.admin_url("/gc?dry_run=true&untagged=false");
        thread::spawn(move || http_request("POST", &admin, &[], None))
    };
    let writer = open_fifo_writer(&data);
    let busy = admin_gc(&server, "POST", "?dry_run=true");
    assert_eq!(busy.status, 409, "{}", busy.text());
    assert!(busy.text().contains("already running"), "{}", busy.text());
    assert!(busy.text().contains("hint"), "{}", busy.text());
    {
        use std::io::Write;
        let mut w = writer;
        w.write_all(&manifest)
            .expect("write the manifest into the FIFO");
    }
    let first = first.join().expect("the first POST");
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["total"]["blobs"], 0, "{}", first.text());
    std::fs::remove_file(&data).unwrap();
    std::fs::write(&data, &manifest).unwrap();
    pull_and_verify(&url, "team/kept", "v1", &kept);
}

/// Opens `fifo` for writing once a reader has it open (bounded wait).
fn open_fifo_writer(fifo: &Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
        {
            Ok(f) => return f,
            // ENXIO: no reader yet.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("no collection opened {} ({e})", fifo.display()),
        }
    }
}
