//! Operations, against the real binary: the admin listener (`/healthz`,
//! `/readyz` with a real storage write and a real slapd, `/metrics` after
//! traffic), the access log and the audit records (text and JSON, never a
//! secret, with every credential kind used), a graceful stop during an
//! upload (exit 0, the client's retry succeeds after the restart; with raw
//! requests, and with a real `docker push` over a throttled link between
//! two network namespaces) and SIGHUP reloading users.
//!
//! Long file: the operations tests share one setup (htpasswd + slapd + rules) and its push and raw-upload helpers; most of the length is rustfmt's layout of long assertion lists.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;

const HANK: (&str, &str) = ("hank", "hank-Secret-1");
const WRONG_PASSWORD: &str = "wrong-Password-77";
const UNKNOWN_USER: &str = "nosuchuser-x9";
const REPO: &str = "team/app";

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn ldap_password(user: &str) -> &'static str {
    LDAP_USERS.iter().find(|(u, _)| *u == user).unwrap().1
}

/// A config with htpasswd users (hank) then LDAP (alice...), the token
/// challenge, rules letting hank do everything in `team/` and everyone
/// else only pull there.
fn write_setup(dir: &Path, ldap_url: &str, extra: &str) -> std::path::PathBuf {
    let htpasswd = dir.join("htpasswd");
    add_users(&htpasswd, &[HANK]);
    let yaml = format!(
        "listen: 127.0.0.1:0\nstorage:\n  filesystem:\n    root: {data}\ntls:\n  enabled: false\n\
         auth:\n  htpasswd: {htpasswd}\n  order: [htpasswd, ldap]\n  token:\n    key: {key}\n\
         \x20 ldap:\n    url: {ldap_url}\n    bind_dn: {svc}\n    bind_password: {svcpw}\n    user_base: {people}\n    timeout_secs: 2\n\
         access:\n  default: deny\n  rules:\n    - subjects: [user:hank]\n      repositories: [team]\n      actions: [\"*\"]\n\
         \x20   - subjects: [authenticated]\n      repositories: [team]\n      actions: [pull]\n{extra}",
        data = dir.join("data").display(),
        htpasswd = htpasswd.display(),
        key = dir.join("token.key").display(),
        svc = LDAP_SVC_DN,
        svcpw = LDAP_SVC_PW,
        people = LDAP_PEOPLE,
    );
    write_config(dir, &yaml)
}

fn serve(config: &Path) -> Regproxy {
    Regproxy::start_with_args(&["serve", "--config", path_str(config)])
}

/// Pushes one blob (POST, then PUT with the digest) with `auth`; returns
/// its digest.
fn push_blob(url: &str, auth: &str, data: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(data));
    let start = http_request(
        "POST",
        &format!("{url}/v2/{REPO}/blobs/uploads/"),
        &[("Authorization", auth)],
        None,
    );
    assert_eq!(start.status, 202, "{}", start.text());
    let location = start.header("location").unwrap();
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = http_request(
        "PUT",
        &format!("{url}{location}{sep}digest={digest}"),
        &[
            ("Authorization", auth),
            ("Content-Type", "application/octet-stream"),
        ],
        Some(data.to_vec()),
    );
    assert_eq!(put.status, 201, "{}", put.text());
    digest
}

/// An OCI image manifest for a config and one layer.
fn manifest(config: (&str, usize), layer: (&str, usize)) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.0, "size": layer.1}],
    }))
    .unwrap()
}

/// The value of the sample `name` (a full series, labels included).
fn sample(metrics: &str, series: &str) -> f64 {
    try_sample(metrics, series).unwrap_or_else(|| panic!("no sample {series} in:\n{metrics}"))
}

fn try_sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// `/metrics` of the admin listener (must answer 200).
fn scrape(server: &Regproxy) -> String {
    let m = http_get(&server.admin_url("/metrics"));
    assert_eq!(m.status, 200, "{}", m.text());
    m.text()
}

/// Panics unless every series has exactly its value, listing all that differ.
fn assert_samples(metrics: &str, expected: &[(String, f64)]) {
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|(series, want)| {
            let got = try_sample(metrics, series);
            (got != Some(*want)).then(|| format!("{series}: want {want}, got {got:?}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{}\n--- metrics ---\n{metrics}",
        wrong.join("\n")
    );
}

#[test]
fn admin_endpoints_metrics_access_log_and_audit_after_traffic() {
    let dir = temp_dir("regproxy-ops-");
    let mut slapd = Slapd::start(SlapdOpts::default());
    let config = write_setup(dir.path(), &slapd.url(), "");
    let server = serve(&config);
    let url = server.url();
    let admin = server.admin_addr().expect("admin line");
    assert_ne!(
        admin.port(),
        server.port(),
        "admin is never the public port"
    );
    // The public port does not serve the admin endpoints.
    assert_eq!(http_get(&format!("{url}/metrics")).status, 404);

    assert_eq!(http_get(&server.admin_url("/healthz")).status, 200);
    let ready = http_get(&server.admin_url("/readyz"));
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(
        ready.json()["checks"]["ldap"]["ok"],
        true,
        "{}",
        ready.text()
    );
    assert_eq!(ready.json()["checks"]["storage"]["ok"], true);

    // Traffic with every kind of credential.
    let hank = basic(HANK.0, HANK.1);
    let config_blob = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = random_bytes(300_000);
    let cfg = push_blob(&url, &hank, &config_blob);
    let lay = push_blob(&url, &hank, &layer);
    let body = manifest((&cfg, config_blob.len()), (&lay, layer.len()));
    let put = http_request(
        "PUT",
        &format!("{url}/v2/{REPO}/manifests/v1"),
        &[
            ("Authorization", &hank),
            ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
        ],
        Some(body.clone()),
    );
    assert_eq!(put.status, 201, "{}", put.text());
    let manifest_digest = put.header("docker-content-digest").unwrap();
    // A token (password grant), then a Bearer pull of the layer.
    let token_resp = http_request(
        "GET",
        &format!(
            "{url}/auth/token?service=regproxy&scope=repository:{REPO}:pull&offline_token=true"
        ),
        &[("Authorization", &hank)],
        None,
    );
    assert_eq!(token_resp.status, 200, "{}", token_resp.text());
    let token = token_resp.json()["token"].as_str().unwrap().to_string();
    let pulled = http_request(
        "GET",
        &format!("{url}/v2/{REPO}/blobs/{lay}"),
        &[("Authorization", &format!("Bearer {token}"))],
        None,
    );
    assert_eq!(pulled.status, 200);
    assert_eq!(pulled.body, layer);
    // A bad token, a wrong password, an unknown user.
    let bad = http_request(
        "GET",
        &format!("{url}/v2/{REPO}/tags/list"),
        &[("Authorization", &format!("Bearer {token}x"))],
        None,
    );
    assert_eq!(bad.status, 401);
    for (user, pw) in [(HANK.0, WRONG_PASSWORD), (UNKNOWN_USER, WRONG_PASSWORD)] {
        let r = http_request(
            "GET",
            &format!("{url}/v2/"),
            &[("Authorization", &basic(user, pw))],
            None,
        );
        assert_eq!(r.status, 401, "{user}");
    }
    // LDAP alice may pull but not push: a denied request.
    let alice = basic("alice", ldap_password("alice"));
    assert_eq!(
        http_request(
            "GET",
            &format!("{url}/v2/{REPO}/tags/list"),
            &[("Authorization", &alice)],
            None
        )
        .status,
        200
    );
    let denied = http_request(
        "PUT",
        &format!("{url}/v2/{REPO}/manifests/v2"),
        &[
            ("Authorization", &alice),
            ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
        ],
        Some(body.clone()),
    );
    assert_eq!(denied.status, 403, "{}", denied.text());
    // hank deletes the manifest.
    let del = http_request(
        "DELETE",
        &format!("{url}/v2/{REPO}/manifests/{manifest_digest}"),
        &[("Authorization", &hank)],
        None,
    );
    assert_eq!(del.status, 202, "{}", del.text());

    // Metrics.
    let m = scrape(&server);
    let requests = |route: &str, status: u16| {
        format!(r#"regproxy_http_requests_total{{route="{route}",status="{status}"}}"#)
    };
    let auth = |backend: &str, outcome: &str| {
        format!(r#"regproxy_auth_attempts_total{{backend="{backend}",outcome="{outcome}"}}"#)
    };
    assert_samples(
        &m,
        &[
            (requests("manifest", 201), 1.0),
            (requests("manifest", 403), 1.0),
            (requests("manifest", 202), 1.0),
            (requests("upload", 201), 2.0),
            (requests("upload", 202), 2.0),
            (requests("blob", 200), 1.0),
            (requests("token", 200), 1.0),
            (requests("base", 401), 2.0),
            (requests("tags", 401), 1.0),
            (
                r#"regproxy_http_request_duration_seconds_count{route="upload"}"#.into(),
                4.0,
            ),
            // The denied PUT's body is never read.
            (
                "regproxy_http_request_body_bytes_total".into(),
                (layer.len() + config_blob.len() + body.len()) as f64,
            ),
            ("regproxy_active_uploads".into(), 0.0),
            // hank: first Basic login checks bcrypt, the next come from the cache.
            (auth("htpasswd", "success"), 1.0),
            (auth("htpasswd", "failure"), 1.0),
            (auth("ldap", "success"), 1.0),
            // the unknown user is looked up in LDAP too
            (auth("ldap", "failure"), 1.0),
            (auth("token", "success"), 1.0),
            (auth("token", "failure"), 1.0),
            (
                r#"regproxy_credential_cache_lookups_total{result="miss"}"#.into(),
                4.0,
            ),
        ],
    );
    assert!(sample(&m, "regproxy_http_response_body_bytes_total") >= layer.len() as f64);
    assert!(
        sample(
            &m,
            r#"regproxy_credential_cache_lookups_total{result="hit"}"#
        ) >= 5.0
    );
    let stored = sample(&m, "regproxy_storage_bytes");
    assert!(stored >= layer.len() as f64, "storage bytes {stored}");

    // Access lines and audit records.
    let logs = server.logs();
    let access: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("regproxy::access"))
        .collect();
    let push_line = access
        .iter()
        .find(|l| {
            l.contains("method=PUT") && l.contains("status=201") && l.contains("/manifests/v1")
        })
        .unwrap_or_else(|| panic!("no access line for the manifest PUT:\n{logs}"));
    for field in [
        "user=\"hank\"",
        "action=\"push\"",
        "repository=\"team/app\"",
        "reference=\"v1\"",
        "peer=127.0.0.1:",
        "http=HTTP/1.1",
        "bytes_in=",
        "bytes_out=",
        "ms=",
    ] {
        assert!(push_line.contains(field), "{field} missing in {push_line}");
    }
    let blob_line = access
        .iter()
        .find(|l| l.contains("method=GET") && l.contains(&lay))
        .unwrap_or_else(|| panic!("no access line for the blob GET:\n{logs}"));
    assert!(
        blob_line.contains(&format!("bytes_out={}", layer.len())),
        "{blob_line}"
    );
    let audit: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("regproxy::audit"))
        .collect();
    let has = |needles: &[&str]| audit.iter().any(|l| needles.iter().all(|n| l.contains(n)));
    assert!(
        has(&[
            "event=\"push\"",
            "user=\"hank\"",
            "repository=team/app",
            "tag=\"v1\"",
            &manifest_digest
        ]),
        "{audit:#?}"
    );
    assert!(
        has(&["event=\"delete\"", "user=\"hank\"", &manifest_digest]),
        "{audit:#?}"
    );
    assert!(
        has(&[
            "event=\"denied\"",
            "user=\"alice\"",
            "action=\"push\"",
            "repository=\"team/app\""
        ]),
        "{audit:#?}"
    );
    assert!(
        has(&["event=\"login_failed\"", "user=\"hank\"", "wrong password"]),
        "{audit:#?}"
    );
    assert!(
        has(&["event=\"login_failed\"", "unknown user"]),
        "{audit:#?}"
    );
    assert!(
        has(&["event=\"login_failed\"", "backend=\"token\""]),
        "{audit:#?}"
    );
    // Never a secret, nor a name that may be a mistyped password.
    for secret in [
        HANK.1,
        WRONG_PASSWORD,
        UNKNOWN_USER,
        ldap_password("alice"),
        LDAP_SVC_PW,
        &token,
        &hank["Basic ".len()..],
        &alice["Basic ".len()..],
    ] {
        assert!(
            !logs.contains(secret),
            "the log holds a secret {secret:?}:\n{logs}"
        );
    }

    // Readiness names what is not ready: the directory, then the storage.
    slapd.stop();
    let r = http_get(&server.admin_url("/readyz"));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        r.json()["not_ready"],
        serde_json::json!(["ldap"]),
        "{}",
        r.text()
    );
    assert!(
        r.json()["checks"]["ldap"]["error"]
            .as_str()
            .unwrap()
            .contains("LDAP server"),
        "{}",
        r.text()
    );
    let tmp = dir.path().join("data/docker/registry/v2/_regproxy_tmp");
    std::fs::remove_dir_all(&tmp).unwrap();
    std::fs::write(&tmp, b"not a directory").unwrap();
    let r = http_get(&server.admin_url("/readyz"));
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json()["not_ready"],
        serde_json::json!(["storage", "ldap"]),
        "{}",
        r.text()
    );
    std::fs::remove_file(&tmp).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    slapd.restart();
    let r = http_get(&server.admin_url("/readyz"));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn json_log_format_gives_one_object_per_line() {
    let dir = temp_dir("regproxy-ops-json-");
    let slapd = Slapd::start(SlapdOpts::default());
    let config = write_setup(dir.path(), &slapd.url(), "log:\n  format: json\n");
    let server = serve(&config);
    let url = server.url();
    let r = http_request(
        "GET",
        &format!("{url}/v2/{REPO}/tags/list"),
        &[("Authorization", &basic(HANK.0, HANK.1))],
        None,
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = http_request(
        "GET",
        &format!("{url}/v2/"),
        &[("Authorization", &basic(HANK.0, WRONG_PASSWORD))],
        None,
    );
    assert_eq!(r.status, 401);
    assert!(server.wait_for_log("login_failed", Duration::from_secs(5)));
    let logs = server.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access = lines
        .iter()
        .find(|v| v["target"] == "regproxy::access" && v["path"] == format!("/v2/{REPO}/tags/list"))
        .unwrap_or_else(|| panic!("no access object:\n{logs}"));
    assert_eq!(access["user"], "hank");
    assert_eq!(access["action"], "pull");
    assert_eq!(access["repository"], REPO);
    assert_eq!(access["status"], 404);
    assert_eq!(access["http"], "HTTP/1.1");
    assert!(
        access["timestamp"].is_string() && access["ms"].is_u64() && access["bytes_out"].is_u64()
    );
    let failed = lines
        .iter()
        .find(|v| v["target"] == "regproxy::audit" && v["event"] == "login_failed")
        .unwrap();
    assert_eq!(failed["user"], "hank");
    assert!(!logs.contains(WRONG_PASSWORD) && !logs.contains(HANK.1));
    // The listeners are named at startup.
    assert!(lines.iter().any(|v| v["message"] == "listeners"
        && v["admin"] == format!("http://{}", server.admin_addr().unwrap())
        && v["public"] == url));
}

/// Sends a PATCH's head and half its body on a raw connection.
fn start_slow_patch(server: &Regproxy, location: &str, auth: &str, data: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        server.host(),
        data.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&data[..data.len() / 2]).unwrap();
    s.flush().unwrap();
    s
}

/// Waits (bounded) until the server is reading the PATCH (the
/// active-uploads gauge says 1), so the stop finds a request in flight.
fn wait_upload_in_progress(server: &Regproxy) {
    for _ in 0..200 {
        if try_sample(&scrape(server), "regproxy_active_uploads") == Some(1.0) {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("the PATCH never started on the server:\n{}", server.logs());
}

fn sigterm(server: &Regproxy) {
    // SAFETY: kill(2) on the pid of the server this test started and has
    // not reaped (its guard is alive); it touches no memory.
    assert_eq!(
        unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGTERM) },
        0
    );
}

/// Waits (bounded) for the server to exit; returns its status and how long.
fn wait_exit(server: &mut Regproxy, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(s) = server.try_exit_status() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A server with `shutdown_timeout_secs`, an upload whose PATCH has sent
/// half its body (the rest is the caller's to send or not), and SIGTERM.
struct StoppedMidPatch {
    _dir: tempfile::TempDir,
    _slapd: Slapd,
    config: std::path::PathBuf,
    server: Regproxy,
    hank: String,
    location: String,
    data: Vec<u8>,
    conn: TcpStream,
}

fn sigterm_during_a_slow_patch(prefix: &str, shutdown_timeout_secs: u64) -> StoppedMidPatch {
    let dir = temp_dir(prefix);
    let slapd = Slapd::start(SlapdOpts::default());
    let config = write_setup(
        dir.path(),
        &slapd.url(),
        &format!("shutdown_timeout_secs: {shutdown_timeout_secs}\n"),
    );
    let server = serve(&config);
    let url = server.url();
    let hank = basic(HANK.0, HANK.1);
    let start = http_request(
        "POST",
        &format!("{url}/v2/{REPO}/blobs/uploads/"),
        &[("Authorization", &hank)],
        None,
    );
    let location = start.header("location").unwrap();
    let data = random_bytes(200_000);
    let conn = start_slow_patch(&server, &location, &hank, &data);
    wait_upload_in_progress(&server);
    sigterm(&server);
    StoppedMidPatch {
        _dir: dir,
        _slapd: slapd,
        config,
        server,
        hank,
        location,
        data,
        conn,
    }
}

#[test]
fn sigterm_lets_a_running_upload_finish_then_exits_0() {
    let StoppedMidPatch {
        _dir,
        _slapd,
        config,
        mut server,
        hank,
        location,
        data,
        mut conn,
    } = sigterm_during_a_slow_patch("regproxy-ops-stop-", 20);
    assert!(
        server.wait_for_log("shutdown requested", Duration::from_secs(10)),
        "{}",
        server.logs()
    );
    // New connections are refused while the running request may finish.
    let refused = (0..50).any(|_| {
        let r = TcpStream::connect(server.addr()).is_err();
        if !r {
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    });
    assert!(refused, "the listener still accepts after SIGTERM");
    assert!(
        server.try_exit_status().is_none(),
        "exited before the upload finished"
    );
    conn.write_all(&data[data.len() / 2..]).unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let status = wait_exit(&mut server, Duration::from_secs(20)).expect("exited after the drain");
    assert_eq!(status.code(), Some(0), "{}", server.logs());

    // After a restart the upload goes on where it stopped.
    let server = serve(&config);
    let url = server.url();
    let status = http_request(
        "GET",
        &format!("{url}{location}"),
        &[("Authorization", &hank)],
        None,
    );
    assert_eq!(status.status, 204, "{}", status.text());
    assert_eq!(
        status.header("range").unwrap(),
        format!("0-{}", data.len() - 1)
    );
    let digest = format!("sha256:{}", sha256_hex(&data));
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = http_request(
        "PUT",
        &format!("{url}{location}{sep}digest={digest}"),
        &[("Authorization", &hank)],
        None,
    );
    assert_eq!(put.status, 201, "{}", put.text());
    let got = http_request(
        "GET",
        &format!("{url}/v2/{REPO}/blobs/{digest}"),
        &[("Authorization", &hank)],
        None,
    );
    assert_eq!(sha256_hex(&got.body), sha256_hex(&data));
}

#[test]
fn an_upload_cut_by_the_shutdown_timeout_is_retried_after_restart() {
    let StoppedMidPatch {
        _dir,
        _slapd,
        config,
        mut server,
        hank,
        location,
        data,
        conn,
    } = sigterm_during_a_slow_patch("regproxy-ops-cut-", 1);
    // The client never sends the rest: the stop waits 1 s, then exits 0.
    let status = wait_exit(&mut server, Duration::from_secs(15)).expect("exited after the timeout");
    assert_eq!(status.code(), Some(0), "{}", server.logs());
    assert!(
        server.logs().contains("did not finish in time"),
        "{}",
        server.logs()
    );
    drop(conn);

    // After the restart the client retries: the upload URL still answers
    // with what was kept, and a fresh monolithic upload succeeds.
    let server = serve(&config);
    let url = server.url();
    let kept = http_request(
        "GET",
        &format!("{url}{location}"),
        &[("Authorization", &hank)],
        None,
    );
    assert!(
        kept.status == 204 || kept.status == 404,
        "{} {}",
        kept.status,
        kept.text()
    );
    let digest = push_blob(&url, &hank, &data);
    let got = http_request(
        "GET",
        &format!("{url}/v2/{REPO}/blobs/{digest}"),
        &[("Authorization", &hank)],
        None,
    );
    assert_eq!(got.status, 200);
    assert_eq!(sha256_hex(&got.body), sha256_hex(&data));
}

#[test]
fn sighup_rereads_users_even_when_the_file_looks_unchanged() {
    let dir = temp_dir("regproxy-ops-hup-");
    let slapd = Slapd::start(SlapdOpts::default());
    let config = write_setup(dir.path(), &slapd.url(), "");
    let server = serve(&config);
    let url = server.url();
    let htpasswd = dir.path().join("htpasswd");
    let get = |pw: &str| {
        http_request(
            "GET",
            &format!("{url}/v2/"),
            &[("Authorization", &basic(HANK.0, pw))],
            None,
        )
        .status
    };
    assert_eq!(get(HANK.1), 200);
    // A new password of the same length, with the old modification time:
    // the 2-second check cannot see it.
    let before = std::fs::metadata(&htpasswd).unwrap().modified().unwrap();
    add_users(&htpasswd, &[(HANK.0, "hank-Secret-2")]);
    std::fs::File::options()
        .write(true)
        .open(&htpasswd)
        .unwrap()
        .set_modified(before)
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(get("hank-Secret-2"), 401, "reloaded without SIGHUP");
    // SAFETY: kill(2) on the pid of the server this test started.
    assert_eq!(
        unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGHUP) },
        0
    );
    assert!(
        server.wait_for_log("reloaded users", Duration::from_secs(5)),
        "{}",
        server.logs()
    );
    assert_eq!(get("hank-Secret-2"), 200);
    assert_eq!(get(HANK.1), 401);
}

/// The access line of the request `method path` answered with `status`.
fn access_line<'a>(logs: &'a str, method: &str, path: &str, status: u16) -> &'a str {
    logs.lines()
        .filter(|l| l.contains("regproxy::access"))
        .find(|l| {
            l.contains(&format!("method={method} "))
                && l.contains(&format!("path={path} "))
                && l.contains(&format!("status={status} "))
        })
        .unwrap_or_else(|| panic!("no access line for {method} {path} -> {status}:\n{logs}"))
}

#[test]
fn access_log_names_the_user_of_denied_requests_and_token_logins() {
    let dir = temp_dir("regproxy-ops-user-");
    let slapd = Slapd::start(SlapdOpts::default());
    let config = write_setup(dir.path(), &slapd.url(), "");
    let server = serve(&config);
    let url = server.url();
    // alice (LDAP) may pull but not push: 403.
    let alice = basic("alice", ldap_password("alice"));
    let denied = http_request(
        "PUT",
        &format!("{url}/v2/{REPO}/manifests/v9"),
        &[
            ("Authorization", &alice),
            ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
        ],
        Some(b"{}".to_vec()),
    );
    assert_eq!(denied.status, 403, "{}", denied.text());
    // The token endpoint: GET with Basic (good, wrong password, unknown
    // name) and the password grant Docker POSTs.
    let token_path = "/auth/token";
    let token_url = format!("{url}{token_path}?service=regproxy&scope=repository:{REPO}:pull");
    for (auth, status) in [
        (basic(HANK.0, HANK.1), 200),
        (basic(HANK.0, WRONG_PASSWORD), 401),
        (basic(UNKNOWN_USER, WRONG_PASSWORD), 401),
    ] {
        let r = http_request("GET", &token_url, &[("Authorization", &auth)], None);
        assert_eq!(r.status, status, "{}", r.text());
    }
    let form = format!(
        "grant_type=password&service=regproxy&client_id=docker&username=alice&password={}",
        ldap_password("alice")
    );
    let posted = http_request(
        "POST",
        &format!("{url}{token_path}"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form.into_bytes()),
    );
    assert_eq!(posted.status, 200, "{}", posted.text());
    assert!(server.wait_for_log("method=POST path=/auth/token", Duration::from_secs(5)));

    let logs = server.logs();
    let line = access_line(&logs, "PUT", &format!("/v2/{REPO}/manifests/v9"), 403);
    assert!(
        line.contains("user=\"alice\"") && line.contains("action=\"push\""),
        "the 403 line does not name who was denied what: {line}"
    );
    let logged_user = |status: u16, nth: usize| {
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| {
                l.contains("regproxy::access")
                    && l.contains(&format!("path={token_path} "))
                    && l.contains(&format!("status={status} "))
            })
            .collect();
        let l = lines
            .get(nth)
            .unwrap_or_else(|| panic!("no token line #{nth} with {status}:\n{logs}"));
        l.split("user=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no user field in {l}"))
            .to_string()
    };
    assert_eq!(logged_user(200, 0), "hank", "token login by GET");
    assert_eq!(logged_user(200, 1), "alice", "token login by POST");
    assert_eq!(logged_user(401, 0), "hank", "a real user's wrong password");
    // An unknown name may be a password typed in the wrong field: empty.
    assert_eq!(logged_user(401, 1), "", "an unknown name is never logged");
    for secret in [HANK.1, WRONG_PASSWORD, UNKNOWN_USER, ldap_password("alice")] {
        assert!(!logs.contains(secret), "the log holds {secret:?}:\n{logs}");
    }
}

/// The image pushed during the stop: one layer, sent over a link of
/// [`SLOW_RATE`], so the upload lasts about 10 s, far longer than the
/// shutdown timeout: the stop always cuts it.
const BIG_LAYER: usize = 48 * 1024 * 1024;
const SLOW_RATE: &str = "40mbit";
const STOP_TIMEOUT_SECS: u64 = 2;
const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes received so far by the uploads in progress of `repo`.
fn upload_bytes(data: &Path, repo: &str) -> u64 {
    let dir = data
        .join("docker/registry/v2/repositories")
        .join(repo)
        .join("_uploads");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| std::fs::metadata(e.path().join("data")).ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// `serve` inside the LAN's server namespace, on `listen`, TLS on.
fn serve_on_lan(lan: &Lan, config: &Path, data: &Path, listen: &str) -> Regproxy {
    Regproxy::start_wrapped(
        &lan.server.exec_prefix(),
        &[
            "serve",
            "--config",
            path_str(config),
            "--listen",
            listen,
            "--data",
            path_str(data),
        ],
    )
}

#[test]
fn sigterm_during_a_real_docker_push_exits_0_and_the_retried_push_succeeds() {
    // Declared first, dropped last: the processes below stop before the
    // namespaces and the link are removed.
    let lan = Lan::create();
    let dir = temp_dir("regproxy-ops-docker-stop-");
    let data = dir.path().join("data");
    let config = write_config(
        dir.path(),
        &format!(
            "tls:\n  hosts: [{ip}]\nauth:\n  enabled: false\nshutdown_timeout_secs: {STOP_TIMEOUT_SECS}\n",
            ip = lan.server_ip()
        ),
    );
    let listen = format!("{}:5000", lan.server_ip());
    let mut server = serve_on_lan(&lan, &config, &data, &listen);
    // The client host: its own engine, trusting the CA serve made.
    let ca = std::fs::read_to_string(dir.path().join("certs/ca.crt")).expect("read ca.crt");
    lan.client
        .write_etc(&format!("docker/certs.d/{listen}/ca.crt"), &ca);
    let engine = Dockerd::start_wrapped(&lan.client.enter(&[lan.client.bind_etc("docker")]));
    let image = format!("{listen}/team/big:1");
    let tarball = write_rootfs_tarball(&dir.path().join("big.tar"), BIG_LAYER);
    engine.docker_ok(["import", path_str(&tarball), &image]);
    let image_id = engine.inspect(&image, "{{.Id}}");
    // Throttle the client's uploads (its end of the link).
    let tc = require_tool("tc", "iproute2");
    let mut cmd = wrapped_command(&lan.client.exec_prefix(), &tc);
    cmd.args([
        "qdisc",
        "add",
        "dev",
        lan.client_dev(),
        "root",
        "tbf",
        "rate",
        SLOW_RATE,
    ])
    .args(["burst", "64kbit", "latency", "400ms"]);
    run_ok(&mut cmd, CMD_TIMEOUT);

    // The push runs in its own process; SIGTERM once the server has
    // written the first MiB of the layer.
    let mut push_cmd = engine.command(["push", &image]);
    push_cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut first_push = Proc::spawn("docker push", &mut push_cmd);
    let deadline = Instant::now() + Duration::from_secs(120);
    while upload_bytes(&data, "team/big") < 1024 * 1024 {
        assert!(
            Instant::now() < deadline && first_push.try_exit_status().is_none(),
            "the layer upload never started:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(&server);
    let limit = Duration::from_secs(STOP_TIMEOUT_SECS + 20);
    let status = wait_exit(&mut server, limit)
        .unwrap_or_else(|| panic!("no exit within {limit:?} of SIGTERM:\n{}", server.logs()));
    assert_eq!(status.code(), Some(0), "{}", server.logs());
    assert!(
        server.logs().contains("did not finish in time"),
        "the stop did not cut the upload:\n{}",
        server.logs()
    );
    let kept = upload_bytes(&data, "team/big");
    assert!(
        kept < BIG_LAYER as u64,
        "the whole layer arrived ({kept} bytes)"
    );

    // Restart on the same address and data; the link is fast again.
    let server = serve_on_lan(&lan, &config, &data, &listen);
    let mut cmd = wrapped_command(&lan.client.exec_prefix(), &tc);
    cmd.args(["qdisc", "del", "dev", lan.client_dev(), "root"]);
    run_ok(&mut cmd, CMD_TIMEOUT);
    // The cut push ends (Docker's own retries may succeed against the new
    // process); then the user's retry succeeds.
    let deadline = Instant::now() + Duration::from_secs(150);
    while first_push.try_exit_status().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (first, _) = first_push.terminate(Duration::from_secs(5));
    eprintln!("the push cut by the stop ended: {first:?}");
    let retry = engine.docker(["push", &image]);
    assert!(retry.status.success(), "{}", output_text(&retry));
    let text = String::from_utf8_lossy(&retry.stdout);
    let digest = text
        .split("digest: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in the push output:\n{text}"))
        .to_string();

    // Pull it back by the digest the push reported: the same image.
    engine.docker_ok(["rmi", &image]);
    let by_digest = format!("{listen}/team/big@{digest}");
    engine.docker_ok(["pull", &by_digest]);
    assert_eq!(engine.inspect(&by_digest, "{{.Id}}"), image_id);
    drop(server);
}
