//! `/gc` on the admin listener, against the real server and the real
//! `regproxy gc`: a dry run frees nothing and reports what `regproxy gc
//! --dry-run` reports, the real run frees exactly that (bytes leave the
//! disk, what is kept still pulls), `GET /gc` answers the last report (404
//! before any), bad queries are 400 and other methods 405 with `Allow`, and
//! a second collection while one runs answers 409 at once.

mod common;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const KIB: usize = 1024;

fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!("tls:\n  enabled: false\nauth:\n  enabled: false\n{extra}"),
    )
}

fn blob_data(root: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    root.join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
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
    delete_manifest(&url, "team/gone", &gone.digest);

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
        assert!(!blob_data(&root, d).exists(), "blob {d} is still on disk");
    }
    assert!(!blob_data(&root, &gone.digest).exists());
    pull_and_verify(&url, "team/kept", "v1", &kept);
    assert_eq!(admin_gc(&server, "GET", "").json(), real);

    // One at a time: a collection blocked reading a manifest (a FIFO in
    // place of its blob file) holds the lock; a second POST answers 409 at
    // once, and the first finishes when the FIFO delivers the manifest.
    let data = blob_data(&root, &kept.digest);
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
