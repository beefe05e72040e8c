//! Logins across instances that share one htpasswd file, one `proxy.yaml`
//! and one token key (and nothing else: each keeps its own credential
//! cache, look-up cache and verified-token cache).
//!
//! - A user removed with Apache `htpasswd -D`, a password changed with
//!   `regproxy htpasswd add`, and a user taken out of a group in
//!   `proxy.yaml` are refused by every instance within the reload interval
//!   (2 s; the wait is bounded well below `auth.cache_secs`, so a cached
//!   login cannot outlive the change): Basic, the token service, access
//!   tokens and refresh tokens already issued, on HTTP/1.1 and HTTP/2,
//!   GET and HEAD.
//! - Instances started at the same moment on an empty directory agree on
//!   one token key: a token from any of them is honoured by all.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

/// `auth.cache_secs` in these tests: short, but longer than the wait for
/// a change, so only the re-check against the files can pass the test.
const CACHE_SECS: u64 = 60;
/// How long every instance gets to refuse a changed user: the reload
/// interval (2 s) plus a generous margin for a loaded machine.
const CHANGE_LIMIT: Duration = Duration::from_secs(20);

const ALICE: (&str, &str) = ("alice", "alice-secret-1");
const BOB: (&str, &str) = ("bob", "bob-secret-1");
const CAROL: (&str, &str) = ("carol", "carol-secret-1");
const CAROL_NEW: (&str, &str) = ("carol", "carol-secret-2");
const REPO: &str = "team/app";

fn yaml(shared: &Path, bucket: &str, team: &[&str]) -> String {
    format!(
        "tls:\n  enabled: false\nauth:\n  htpasswd: {}\n  cache_secs: {CACHE_SECS}\n  \
         failed_logins:\n    per_user: 10000\n    per_address: 10000\n  token:\n    key: {}\n\
         groups:\n  team: [{}]\naccess:\n  default: deny\n  rules:\n    \
         - subjects: [group:team]\n      repositories: [team]\n      actions: [pull, push]\n\
         {bucket}",
        shared.join("htpasswd").display(),
        shared.join("keys/token.key").display(),
        team.join(", ")
    )
}

/// One request to `base` with `auth` (an `Authorization` value, if any).
fn call(
    proto: Proto,
    method: &str,
    base: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<Vec<u8>>,
) -> HttpResponse {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    http_request_as(proto, method, &format!("{base}{path}"), &headers, body)
}

fn basic((user, password): (&str, &str)) -> String {
    basic_value(user, password)
}

/// `GET /auth/token` with Basic for pull and push on [`REPO`], asking for
/// a refresh token too.
fn token_request(proto: Proto, base: &str, cred: (&str, &str)) -> HttpResponse {
    let path = format!(
        "/auth/token?service=regproxy&offline_token=true&client_id=t\
         &scope=repository:{REPO}:pull,push"
    );
    call(proto, "GET", base, &path, Some(&basic(cred)), None)
}

/// The access and refresh token an instance issues; panics unless it
/// grants pull on [`REPO`].
fn tokens(proto: Proto, base: &str, cred: (&str, &str)) -> (String, String) {
    let r = token_request(proto, base, cred);
    assert_eq!(
        r.status,
        200,
        "token for {} from {base}: {}",
        cred.0,
        r.text()
    );
    let v = r.json();
    assert!(
        v["token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3),
        "{v}"
    );
    let access = claims_of(v["token"].as_str().unwrap_or_default())["access"].to_string();
    assert!(access.contains("pull"), "{} got no pull: {v}", cred.0);
    (
        v["token"].as_str().unwrap_or_default().to_string(),
        v["refresh_token"].as_str().unwrap_or_default().to_string(),
    )
}

/// Whether the token service grants `cred` pull on [`REPO`].
fn granted_pull(proto: Proto, base: &str, cred: (&str, &str)) -> Option<bool> {
    let r = token_request(proto, base, cred);
    (r.status == 200).then(|| {
        let token = r.json()["token"].as_str().unwrap_or_default().to_string();
        claims_of(&token)["access"].to_string().contains("pull")
    })
}

fn refresh(proto: Proto, base: &str, refresh_token: &str) -> u16 {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("service", "regproxy"),
            ("client_id", "t"),
            ("scope", &format!("repository:{REPO}:pull")),
        ])
        .finish();
    http_request_as(
        proto,
        "POST",
        &format!("{base}/auth/token"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(body.into_bytes()),
    )
    .status
}

/// Statuses of GET and HEAD of the blob with `auth` on both versions.
fn blob_statuses(base: &str, blob: &str, auth: &str) -> Vec<u16> {
    let path = format!("/v2/{REPO}/blobs/{blob}");
    let mut out = Vec::new();
    for proto in PROTOCOLS {
        for method in ["GET", "HEAD"] {
            out.push(call(proto, method, base, &path, Some(auth), None).status);
        }
    }
    out
}

/// What is still not as it must be after the changes, on one instance
/// (empty: all refused or allowed as they should be).
fn unmet_after_change(
    base: &str,
    blob: &str,
    old_access: &[(&str, String)],
    old_refresh: &[(&str, String)],
) -> Vec<String> {
    let mut unmet = Vec::new();
    let mut want = |what: String, ok: bool| {
        if !ok {
            unmet.push(what);
        }
    };
    for (who, auth, allowed) in [
        ("alice (removed), Basic", basic(ALICE), false),
        ("carol's old password, Basic", basic(CAROL), false),
        ("carol's new password, Basic", basic(CAROL_NEW), true),
        ("bob (out of the group), Basic", basic(BOB), false),
    ] {
        let s = blob_statuses(base, blob, &auth);
        let ok = if allowed {
            s.iter().all(|&c| c == 200)
        } else {
            s.iter().all(|&c| c == 401 || c == 403)
        };
        want(format!("{who}: blob {s:?}"), ok);
    }
    for (who, token) in old_access {
        let s = blob_statuses(base, blob, &format!("Bearer {token}"));
        want(
            format!("{who}'s old access token: blob {s:?}"),
            s.iter().all(|&c| c == 401 || c == 403),
        );
    }
    for proto in PROTOCOLS {
        for (who, cred, want_pull) in [
            ("alice", ALICE, None),
            ("carol (old)", CAROL, None),
            ("carol (new)", CAROL_NEW, Some(true)),
            ("bob", BOB, Some(false)),
        ] {
            let got = granted_pull(proto, base, cred);
            want(
                format!("{who}: token service over {proto:?} grants pull {got:?}"),
                got == want_pull,
            );
        }
        for (who, token) in old_refresh {
            let status = refresh(proto, base, token);
            want(
                format!("{who}'s refresh token over {proto:?}: {status}"),
                status == 401,
            );
        }
    }
    unmet
}

#[test]
fn a_removed_user_an_old_password_and_a_group_change_bite_on_every_instance() {
    let garage = Garage::start(BUCKET);
    let dir = temp_dir("s3-logins-");
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let htpasswd = shared.join("htpasswd");
    let apache = require_tool("htpasswd", "apache2-utils");
    for (user, password) in [ALICE, BOB, CAROL] {
        let flags = if htpasswd.exists() { "-bB" } else { "-cbB" };
        run_ok(
            std::process::Command::new(&apache)
                .args([flags, "-C", "4"])
                .arg(&htpasswd)
                .args([user, password]),
            Duration::from_secs(30),
        );
    }
    let creds = garage.credentials_file(dir.path());
    let bucket = garage.storage_yaml(BUCKET, "logins", &creds);
    let config = write_config(&shared, &yaml(&shared, &bucket, &["alice", "bob", "carol"]));
    let instances: Vec<Regproxy> = (0..3).map(|_| serve_loopback(&config)).collect();
    let urls: Vec<String> = instances.iter().map(Regproxy::url).collect();

    // A blob to pull, and each user's Basic login, tokens and refresh
    // tokens on every instance (so every cache holds every login).
    let data = random_bytes(4096);
    let blob = format!("sha256:{}", sha256_hex(&data));
    let r = call(
        Proto::Http1,
        "POST",
        &urls[0],
        &format!("/v2/{REPO}/blobs/uploads/?digest={blob}"),
        Some(&basic(ALICE)),
        Some(data.clone()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let mut old_access = Vec::new();
    let mut old_refresh = Vec::new();
    for (i, base) in urls.iter().enumerate() {
        for cred in [ALICE, BOB, CAROL] {
            assert_eq!(blob_statuses(base, &blob, &basic(cred)), [200; 4]);
            let proto = PROTOCOLS[i % 2];
            let (access, refresh_token) = tokens(proto, base, cred);
            // Any instance honours a token another one issued.
            for other in &urls {
                assert_eq!(
                    blob_statuses(other, &blob, &format!("Bearer {access}")),
                    [200; 4],
                    "{}'s token from {base} on {other}",
                    cred.0
                );
            }
            if cred.0 != BOB.0 {
                old_access.push((cred.0, access));
                old_refresh.push((cred.0, refresh_token));
            }
        }
    }

    // The changes: Apache htpasswd removes alice, regproxy's own command
    // gives carol a new password, proxy.yaml takes bob out of the team.
    run_ok(
        std::process::Command::new(&apache)
            .arg("-D")
            .arg(&htpasswd)
            .arg(ALICE.0),
        Duration::from_secs(30),
    );
    let mut add = std::process::Command::new(env!("CARGO_BIN_EXE_regproxy"));
    add.args([
        "htpasswd",
        "add",
        CAROL.0,
        "--cost",
        "4",
        "--password-stdin",
        "--file",
    ])
    .arg(&htpasswd);
    let out = run_with_input(
        &mut add,
        format!("{}\n", CAROL_NEW.1).as_bytes(),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", output_text(&out));
    regproxy::files::write_atomic(
        &config,
        yaml(&shared, &bucket, &["alice", "carol"]).as_bytes(),
        0o644,
    )
    .unwrap();
    let changed = Instant::now();

    // Every instance refuses what changed within the limit, and still
    // lets carol in with her new password.
    for (i, base) in urls.iter().enumerate() {
        let mut unmet;
        loop {
            unmet = unmet_after_change(base, &blob, &old_access, &old_refresh);
            if unmet.is_empty() || changed.elapsed() > CHANGE_LIMIT {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            unmet.is_empty(),
            "instance {i} ({base}) {:?} after the change still:\n{}\n--- its log ---\n{}",
            changed.elapsed(),
            unmet.join("\n"),
            tail_file(instances[i].log_path(), 40)
        );
    }
    eprintln!(
        "every instance refused the changed users {:?} after the change",
        changed.elapsed()
    );
    // Carol's new tokens work everywhere, from whichever instance.
    let (fresh, _) = tokens(Proto::Http2, &urls[2], CAROL_NEW);
    for base in &urls {
        assert_eq!(
            blob_statuses(base, &blob, &format!("Bearer {fresh}")),
            [200; 4]
        );
    }
}

#[test]
fn instances_started_at_once_on_an_empty_dir_share_one_token_key() {
    const INSTANCES: usize = 4;
    const ROUNDS: usize = 3;
    let garage = Garage::start(BUCKET);
    for round in 0..ROUNDS {
        let dir = temp_dir("s3-keyrace-");
        let shared = dir.path().join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        add_users(&shared.join("htpasswd"), &[ALICE]);
        let creds = garage.credentials_file(dir.path());
        let bucket = garage.storage_yaml(BUCKET, &format!("keyrace{round}"), &creds);
        let config = write_config(dir.path(), &yaml(&shared, &bucket, &["alice"]));
        assert!(!shared.join("keys").exists());

        let barrier = std::sync::Barrier::new(INSTANCES);
        let instances: Vec<Regproxy> = std::thread::scope(|s| {
            let started: Vec<_> = (0..INSTANCES)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        serve_loopback(&config)
                    })
                })
                .collect();
            started
                .into_iter()
                .map(|h| h.join().expect("an instance started"))
                .collect()
        });
        let keys: Vec<_> = std::fs::read_dir(shared.join("keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(keys, ["token.key"], "one key file, no temp file left");

        for (i, issuer) in instances.iter().enumerate() {
            let (access, _) = tokens(PROTOCOLS[i % 2], &issuer.url(), ALICE);
            for (j, other) in instances.iter().enumerate() {
                for proto in PROTOCOLS {
                    for method in ["GET", "HEAD"] {
                        let r = call(
                            proto,
                            method,
                            &other.url(),
                            "/v2/",
                            Some(&format!("Bearer {access}")),
                            None,
                        );
                        assert_eq!(
                            r.status,
                            200,
                            "round {round}: a token from instance {i} refused by instance \
                             {j} ({method} over {proto:?}): {:?}",
                            r.header("www-authenticate")
                        );
                    }
                }
            }
        }
    }
}
