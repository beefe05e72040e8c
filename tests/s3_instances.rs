//! Several regproxy instances on one S3 bucket (a real Garage node started
//! by the test): they share the bucket, the htpasswd file and the token
//! signing key, and nothing else.
//!
//! - A tag pushed through one instance is served at once by the other (the
//!   manifest cache resolves tags from storage on shared storage).
//! - `docker push` through nginx round-robin over two instances: one push
//!   sends its PATCHes to both (their access logs show it, with the bytes),
//!   and upload sessions move between them; a token from one is honoured by
//!   the other; one instance is killed (-9) mid-push, the retry succeeds,
//!   and the image pulled back through the survivor is identical.
//! - `chunks`: one chunked upload through both with the registry API, the
//!   first instance killed between chunks.
//! - `logins`: removed users, changed passwords and group changes bite on
//!   every instance; instances started at once share one token key.

#[path = "s3_instances/chunks.rs"]
mod chunks;
mod common;
#[path = "s3_instances/logins.rs"]
mod logins;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

const BUCKET: &str = "registry";
const MIB: usize = 1024 * 1024;

fn manifest_digest(url: &str, repo: &str, tag: &str) -> Option<String> {
    let r = http_request(
        "GET",
        &format!("{url}/v2/{repo}/manifests/{tag}"),
        &[("Accept", RAW_MANIFEST)],
        None,
    );
    (r.status == 200).then(|| r.header("docker-content-digest").unwrap_or_default())
}

#[test]
fn a_tag_pushed_through_one_instance_is_seen_at_once_through_the_other() {
    let garage = Garage::start(BUCKET);
    let dir = temp_dir("s3-instances-");
    let creds = garage.credentials_file(dir.path());
    let yaml = format!(
        "tls:\n  enabled: false\nauth:\n  enabled: false\n{}",
        garage.storage_yaml(BUCKET, "", &creds)
    );
    let config = write_config(dir.path(), &yaml);
    let a = serve_loopback(&config);
    let b = serve_loopback(&config);
    let (ua, ub) = (a.url(), b.url());

    let one = RawImage::random(1, 1000);
    let two = RawImage::random(1, 1000);
    push_image(&ua, "team/app", Some("latest"), &one);
    // B reads it (and would cache it) ...
    assert_eq!(
        manifest_digest(&ub, "team/app", "latest"),
        Some(one.digest.clone())
    );
    // ... A moves the tag: B answers with the new manifest right away.
    push_image(&ua, "team/app", Some("latest"), &two);
    assert_eq!(
        manifest_digest(&ub, "team/app", "latest"),
        Some(two.digest.clone())
    );
    pull_and_verify(&ub, "team/app", "latest", &two);
    // A deletes the manifest: B no longer serves it, by tag or digest.
    let del = http_request(
        "DELETE",
        &format!("{ua}/v2/team/app/manifests/{}", two.digest),
        &[],
        None,
    );
    assert_eq!(del.status, 202, "{}", del.text());
    assert_eq!(manifest_digest(&ub, "team/app", "latest"), None);
    assert_eq!(manifest_digest(&ub, "team/app", &two.digest), None);
}

/// One request to an upload session, from an instance's access log.
#[derive(Debug)]
struct UploadRequest {
    method: String,
    /// The upload's id (the access line's `reference`).
    id: String,
    status: u16,
    bytes_in: u64,
}

/// The value of `key=` in an access line (`key=value` or `key="value"`).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split_whitespace().next(),
    }
}

/// The `PATCH`/`PUT`/`POST` requests on upload sessions an instance's
/// access log shows.
fn upload_requests(r: &Regproxy) -> Vec<UploadRequest> {
    r.logs()
        .lines()
        .filter(|l| l.contains("regproxy::access") && l.contains("/blobs/uploads/"))
        .filter_map(|l| {
            Some(UploadRequest {
                method: field(l, "method")?.to_string(),
                id: field(l, "reference").unwrap_or_default().to_string(),
                status: field(l, "status")?.parse().ok()?,
                bytes_in: field(l, "bytes_in")?.parse().ok()?,
            })
        })
        .collect()
}

/// Upload data that reached an instance: (accepted `PATCH`es, their bytes).
fn patches(requests: &[UploadRequest]) -> (usize, u64) {
    let ok: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.status == 202 && r.bytes_in > 0)
        .collect();
    (ok.len(), ok.iter().map(|r| r.bytes_in).sum())
}

/// Waits (bounded) until an instance is reading an upload body.
fn wait_upload_in_progress(r: &Regproxy) -> bool {
    for _ in 0..1200 {
        let m = http_get(&r.admin_url("/metrics")).text();
        if m.lines()
            .any(|l| l.starts_with("regproxy_active_uploads ") && !l.ends_with(" 0"))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

#[test]
fn docker_push_through_two_instances_survives_one_dying_and_pulls_back_identical() {
    let garage = Garage::start(BUCKET);
    let dir = temp_dir("s3-pair-");
    let creds = garage.credentials_file(dir.path());
    let htpasswd = dir.path().join("htpasswd");
    add_users(&htpasswd, &[("alice", "alice-secret-1")]);
    let lb_port = NginxBalancer::pick_port();
    let yaml = format!(
        "tls:\n  enabled: false\nauth:\n  htpasswd: {}\n  token:\n    key: {}\n    \
         realm: http://127.0.0.1:{lb_port}/auth/token\n{}",
        htpasswd.display(),
        dir.path().join("token.key").display(),
        garage.storage_yaml(BUCKET, "pair", &creds)
    );
    let config = write_config(dir.path(), &yaml);
    // The first start makes the signing key; the second reads the same file.
    let a = serve_loopback(&config);
    let mut b = serve_loopback(&config);
    let upstreams: Vec<SocketAddr> = vec![a.addr(), b.addr()];
    let lb = NginxBalancer::start(lb_port, &upstreams);
    let host = lb.host();

    let engine = Dockerd::start();
    let mut login = engine.command(["login", &host, "-u", "alice", "--password-stdin"]);
    let out = run_with_input(&mut login, b"alice-secret-1\n", Duration::from_secs(60));
    assert!(
        out.status.success(),
        "docker login through nginx:\n{}",
        output_text(&out)
    );

    // 1. A first image: its uploads are spread over both instances, and a
    //    token issued by one is honoured by the other.
    let ctx = make_build_context(&engine.dir().join("ctx1"), 4, MIB);
    let first = format!("{host}/team/app:v1");
    engine.build(&ctx.dir, &first);
    engine.docker_ok(["push", &first]);
    let (ra, rb) = (upload_requests(&a), upload_requests(&b));
    let ((na, bytes_a), (nb, bytes_b)) = (patches(&ra), patches(&rb));
    let logs = || format!("--- A ---\n{}\n--- B ---\n{}", a.logs(), b.logs());
    assert!(
        na > 0 && nb > 0,
        "one push did not PATCH both instances (A {na}, B {nb})\n{}",
        logs()
    );
    // The four 1 MiB random files (incompressible) went through PATCHes.
    assert!(
        bytes_a + bytes_b >= 4 * MIB as u64,
        "PATCH bodies: A {bytes_a} B {bytes_b} bytes\n{}",
        logs()
    );
    // Sessions moved: one started or finished on one instance was
    // PATCHed on the other.
    let ids = |rs: &[UploadRequest], patch: bool| -> std::collections::HashSet<String> {
        rs.iter()
            .filter(|r| (r.method == "PATCH") == patch && !r.id.is_empty())
            .map(|r| r.id.clone())
            .collect()
    };
    let moved = ids(&ra, true).intersection(&ids(&rb, false)).count()
        + ids(&rb, true).intersection(&ids(&ra, false)).count();
    assert!(
        moved > 0,
        "no upload session moved between the instances\n{}",
        logs()
    );
    eprintln!(
        "first push: PATCHes A {na} ({bytes_a} B), B {nb} ({bytes_b} B); sessions moved: {moved}"
    );

    // 2. A second image with big layers; kill B while it reads an upload.
    let ctx = make_build_context(&engine.dir().join("ctx2"), 3, 24 * MIB);
    let second = format!("{host}/team/app:v2");
    let image_id = engine.build(&ctx.dir, &second);
    let layers = engine.inspect(&second, "{{json .RootFS.Layers}}");
    let mut push = engine.command(["push", &second]);
    push.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut pushing = Proc::spawn("docker push", &mut push);
    let caught = wait_upload_in_progress(&b);
    b.kill9();
    assert!(caught, "B never read an upload body during the push");
    // Docker retries failed layers itself; if it gives up, a second push
    // (what a CI job's retry does) must finish the job.
    let mut first_try_ok = false;
    for _ in 0..2400 {
        if let Some(status) = pushing.try_exit_status() {
            first_try_ok = status.success();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(pushing);
    if !first_try_ok {
        engine.docker_ok(["push", &second]);
    }
    eprintln!("push after kill -9: succeeded on the first try: {first_try_ok}");

    // 3. Pull it back through the survivor (nginx now sends all to A).
    engine.docker_ok(["rmi", &second]);
    engine.docker_ok(["pull", &second]);
    assert_eq!(engine.inspect(&second, "{{.Id}}"), image_id);
    assert_eq!(engine.inspect(&second, "{{json .RootFS.Layers}}"), layers);
    let cid = engine.docker_ok(["create", &second]).trim().to_string();
    let export = engine.dir().join("export.tar");
    engine.docker_ok(["export", "-o", path_str(&export), &cid]);
    engine.docker_ok(["rm", &cid]);
    let rootfs = engine.dir().join("exported");
    std::fs::create_dir_all(&rootfs).unwrap();
    run_ok(
        std::process::Command::new(TAR)
            .arg("-xf")
            .arg(&export)
            .arg("-C")
            .arg(&rootfs),
        Duration::from_secs(60),
    );
    for (in_image, source) in &ctx.files {
        assert_same_file(source, &rootfs.join(in_image.trim_start_matches('/')));
    }
    assert!(
        a.logs().contains("method=GET"),
        "the pull did not go through the surviving instance"
    );
    drop(lb);
}

/// `regproxy config check` probes the bucket: a missing bucket, a refused
/// key and a store that is down each stop it (exit 64) with a `hint:`;
/// the secret never appears in its output.
#[test]
fn config_check_and_serve_name_a_missing_bucket_a_refused_key_and_a_dead_store() {
    let mut garage = Garage::start(BUCKET);
    let dir = temp_dir("s3-check-");
    let creds = garage.credentials_file(dir.path());
    let check = |yaml: &str| {
        let config = write_config(dir.path(), &format!("tls:\n  enabled: false\n{yaml}"));
        let out = run(
            std::process::Command::new(env!("CARGO_BIN_EXE_regproxy"))
                .args(["config", "check", "-c"])
                .arg(&config),
            Duration::from_secs(120),
        );
        (out.status.code(), output_text(&out))
    };
    let (code, text) = check(&garage.storage_yaml(BUCKET, "", &creds));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("storage.s3: bucket registry"), "{text}");

    let (code, text) = check(&garage.storage_yaml("no-such-bucket", "", &creds));
    assert_eq!(code, Some(64), "{text}");
    assert!(text.contains("hint: the bucket"), "{text}");

    let wrong = dir.path().join("wrong.env");
    std::fs::write(
        &wrong,
        format!(
            "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
            garage.key_id,
            "1".repeat(64)
        ),
    )
    .unwrap();
    let (code, text) = check(&garage.storage_yaml(BUCKET, "", &wrong));
    assert_eq!(code, Some(64), "{text}");
    assert!(text.contains("hint: the store refused the key"), "{text}");
    assert!(
        !text.contains(&garage.secret) && !text.contains(&"1".repeat(64)),
        "{text}"
    );

    let missing = dir.path().join("missing.env");
    let (code, text) = check(&garage.storage_yaml(BUCKET, "", &missing));
    assert_eq!(code, Some(64), "{text}");
    assert!(text.contains("credentials_file"), "{text}");

    garage.kill9();
    let (code, text) = check(&garage.storage_yaml(BUCKET, "", &creds));
    assert_eq!(code, Some(64), "{text}");
    assert!(text.contains("hint: the store did not answer"), "{text}");
}

/// Every key of a bucket, deleted (Garage deletes only empty buckets).
fn empty_bucket(garage: &Garage, bucket: &str) {
    use futures_util::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&garage.endpoint)
        .with_region("garage")
        .with_bucket_name(bucket)
        .with_access_key_id(&garage.key_id)
        .with_secret_access_key(&garage.secret)
        .with_allow_http(true)
        .build()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let metas: Vec<object_store::ObjectMeta> = store.list(None).try_collect().await.unwrap();
        for m in metas {
            store.delete(&m.location).await.unwrap();
        }
    });
}

/// A 503 `UNAVAILABLE` OCI error answer.
fn assert_unavailable(what: &str, r: &HttpResponse) {
    let text = r.text();
    assert_eq!(r.status, 503, "{what}: {} {text}", r.status);
    assert!(text.contains("\"UNAVAILABLE\""), "{what}: {text}");
    assert!(text.contains("retry later"), "{what}: no hint: {text}");
}

/// The bucket disappears (or the key loses its grant) while an instance
/// runs: reads and writes answer 503 `UNAVAILABLE`, never "unknown".
#[test]
fn a_bucket_removed_or_denied_at_run_time_answers_unavailable() {
    let garage = Garage::start(BUCKET);
    garage.create_bucket("doomed");
    let dir = temp_dir("s3-gone-");
    let creds = garage.credentials_file(dir.path());
    let base = "tls:\n  enabled: false\nauth:\n  enabled: false\n";
    let doomed = write_config(
        dir.path(),
        &format!("{base}{}", garage.storage_yaml("doomed", "", &creds)),
    );
    let a = serve_loopback(&doomed);
    let sub = dir.path().join("b");
    std::fs::create_dir_all(&sub).unwrap();
    let denied = write_config(
        &sub,
        &format!("{base}{}", garage.storage_yaml(BUCKET, "", &creds)),
    );
    let b = serve_loopback(&denied);
    let image = RawImage::random(1, 1000);
    for r in [&a, &b] {
        push_image(&r.url(), "team/app", Some("v1"), &image);
    }
    let layer = image.blobs[1].0.clone();

    empty_bucket(&garage, "doomed");
    garage.cli(&["bucket", "delete", "--yes", "doomed"]);
    garage.cli(&[
        "bucket",
        "deny",
        "--read",
        "--write",
        "--owner",
        BUCKET,
        "--key",
        "regproxy-test",
    ]);
    for (name, r) in [("deleted bucket", &a), ("denied key", &b)] {
        let url = r.url();
        let get = |path: &str| {
            http_request(
                "GET",
                &format!("{url}/v2/team/app/{path}"),
                &[("Accept", RAW_MANIFEST)],
                None,
            )
        };
        assert_unavailable(&format!("{name}: GET manifest"), &get("manifests/v1"));
        assert_unavailable(
            &format!("{name}: GET manifest by digest"),
            &get(&format!("manifests/{}", image.digest)),
        );
        assert_unavailable(
            &format!("{name}: GET blob"),
            &get(&format!("blobs/{layer}")),
        );
        let head = http_request(
            "HEAD",
            &format!("{url}/v2/team/app/blobs/{layer}"),
            &[],
            None,
        );
        assert_eq!(head.status, 503, "{name}: HEAD blob");
        let put = http_request(
            "PUT",
            &format!("{url}/v2/team/app/manifests/v2"),
            &[("Content-Type", image.media_type)],
            Some(image.manifest.clone()),
        );
        assert_unavailable(&format!("{name}: PUT manifest"), &put);
        let start = http_request(
            "POST",
            &format!("{url}/v2/team/app/blobs/uploads/"),
            &[],
            None,
        );
        assert_unavailable(&format!("{name}: POST upload"), &start);
    }
}
