//! End to end with logins: a real Docker engine over verified TLS logs in to
//! regproxy as an htpasswd user and as a user of a real OpenLDAP directory,
//! pushes and pulls; a directory that is down makes `docker login` fail with
//! the server's clear message, and works again once it is back; a push that
//! lasts longer than its token (a throttled link between two network
//! namespaces) gets a new token and succeeds. Every server log is then
//! searched for every password, token and `Authorization` value the test
//! saw: none may appear.
//!
//! `registry.local` resolves to `::1` on this machine (not 127.0.0.1, which
//! dockerd treats as insecure and does not verify; see tests/e2e_tls.rs).
//!
//! Long file: each test drives a real Docker engine and directory through one whole login story, sharing the engine and directory setup.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::Value;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
const NAME: &str = "registry.local";
/// The address `registry.local` resolves to on this machine (see above).
const NAME_ADDR: &str = "::1";
const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for one docker CLI command.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(180);

/// The htpasswd user (cost 4 for speed).
const ALICE: (&str, &str) = ("alice", "alice-Registry-pw-1");
const WRONG: &str = "not-alices-password";
/// The server's message when a login backend is down.
const UNAVAILABLE: &str = "authentication service unavailable";

// ---------------------------------------------------------------------------
// htpasswd and LDAP users with Docker
// ---------------------------------------------------------------------------

#[test]
fn docker_logs_in_pushes_and_pulls_as_htpasswd_and_ldap_users_and_no_secret_is_logged() {
    let mut slapd = Slapd::start(SlapdOpts::default());
    let bob = ldap_user("bob");
    let carol = ldap_user("carol");
    let work = temp_dir("regproxy-e2e-auth-");
    add_users(&work.path().join("htpasswd"), &[ALICE]);
    let config = write_config(
        work.path(),
        &format!(
            "tls:\n  hosts: [{NAME}]\nauth:\n  htpasswd: htpasswd\n  ldap:\n    url: {}\n    \
             bind_dn: {LDAP_SVC_DN}\n    bind_password: {LDAP_SVC_PW}\n    user_base: {LDAP_PEOPLE}\n    \
             group_base: {LDAP_GROUPS}\n    timeout_secs: 2\n",
            slapd.url()
        ),
    );
    let registry = start_registry::<&str>(&[], &config, &work.path().join("data"), "[::1]:0");
    let _hosts = HostsEntry::add(NAME_ADDR, NAME);
    let host = format!("{NAME}:{}", registry.port());
    let ca = work.path().join("certs/ca.crt");
    let _trusted = CertsDir::install(Path::new("/etc/docker/certs.d"), &host, &ca);
    let engine = Dockerd::start();
    let mut secrets = Secrets::default();
    for (user, password) in [ALICE, (ALICE.0, WRONG), bob, carol] {
        secrets.login(user, password);
    }
    secrets.add(LDAP_SVC_PW);

    // A wrong password: docker login fails with the server's 401.
    let out = docker_login(&engine, &host, ALICE.0, WRONG);
    let text = output_text(&out);
    assert!(
        !out.status.success(),
        "login with a wrong password:\n{text}"
    );
    assert!(
        text.to_lowercase().contains("unauthorized"),
        "no `unauthorized` in:\n{text}"
    );
    assert_eq!(
        stored_login(&engine, &host),
        None,
        "a failed login was stored"
    );

    // The htpasswd user: login stores an identity token, not the password.
    let id = login_ok(&engine, &host, ALICE);
    secrets.add(&id);
    push_and_pull(
        &engine,
        &work.path().join("alice"),
        &format!("{host}/alice/app:1"),
    );

    // A user from the directory.
    let id = login_ok(&engine, &host, bob);
    secrets.add(&id);
    push_and_pull(
        &engine,
        &work.path().join("bob"),
        &format!("{host}/bob/app:1"),
    );

    // Tokens from the token service, fetched with curl (an independent
    // client): GET with Basic and offline_token, then the refresh grant.
    let base = format!("https://{host}/auth/token");
    let scope = "repository:bob/app:pull";
    let answer = curl_json(
        &ca,
        &[
            "-u",
            &format!("{}:{}", bob.0, bob.1),
            &format!("{base}?service=regproxy&offline_token=true&scope={scope}"),
        ],
    );
    let (access, refresh) = (
        str_field(&answer, "token"),
        str_field(&answer, "refresh_token"),
    );
    let answer = curl_json(
        &ca,
        &[
            "--data-urlencode",
            "grant_type=refresh_token",
            "--data-urlencode",
            &format!("refresh_token={refresh}"),
            "--data-urlencode",
            "service=regproxy",
            "--data-urlencode",
            &format!("scope={scope}"),
            &base,
        ],
    );
    let renewed = str_field(&answer, "token");
    for t in [&access, &refresh, &renewed] {
        secrets.add(t);
    }

    // The directory goes down: a user whose login is not cached cannot log
    // in. Docker 20.10 shows only the status of a 5xx answer (its registry
    // client reads error bodies of 4xx answers only); the server's reason
    // is in the answer's body, as curl shows.
    slapd.stop();
    let out = docker_login(&engine, &host, carol.0, carol.1);
    let text = output_text(&out);
    assert!(
        !out.status.success(),
        "login with the directory down:\n{text}"
    );
    assert!(
        text.contains("503 Service Unavailable"),
        "docker login does not name the 503:\n{text}"
    );
    let (status, body) = curl(
        &ca,
        &[
            "-u",
            &format!("{}:{}", carol.0, carol.1),
            &format!("{base}?service=regproxy&offline_token=true"),
        ],
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("\"UNAVAILABLE\"")
            && body.contains(UNAVAILABLE)
            && body.contains(&slapd.url()),
        "the 503 does not say why: {body}"
    );
    // Back up: the same login works.
    slapd.restart();
    let id = login_ok(&engine, &host, carol);
    secrets.add(&id);

    secrets.assert_absent_from("regproxy (htpasswd + LDAP)", &registry.logs());
}

// ---------------------------------------------------------------------------
// A push longer than the token's lifetime
// ---------------------------------------------------------------------------

/// The layer pushed over the throttled link: at 4 Mbit/s about 75 s.
const SLOW_LAYER: usize = 36 * MIB;
const THROTTLE: &[&str] = &[
    "root", "tbf", "rate", "4mbit", "burst", "32kbit", "latency", "400ms",
];

#[test]
fn a_slow_push_that_outlives_its_token_gets_a_new_one_and_succeeds() {
    // Declared first, dropped last: the processes below stop before the
    // namespaces and the link are removed.
    let lan = Lan::create();
    let (srv, client) = (&lan.server, &lan.client);
    let work = temp_dir("regproxy-e2e-slow-");
    add_users(&work.path().join("htpasswd"), &[ALICE]);
    let config = write_config(
        work.path(),
        &format!(
            "tls:\n  hosts: [{NAME}]\nauth:\n  htpasswd: htpasswd\n  token:\n    expiry_secs: 60\n"
        ),
    );
    let listen = format!("{}:5000", lan.server_ip());
    let registry = start_registry(
        &srv.exec_prefix(),
        &config,
        &work.path().join("data"),
        &listen,
    );
    assert_eq!(registry.url(), format!("https://{listen}"));

    // The client host: its own /etc/docker with the CA. It names the
    // registry by its LAN address (in the certificate, and outside Docker's
    // insecure 127.0.0.0/8): a bind-mounted /etc/hosts would be detached
    // when another test replaces the machine's /etc/hosts meanwhile, and
    // the token refresh at the end of the push would then fail to resolve
    // the name.
    let host = format!("{}:5000", lan.server_ip());
    let ca = fs::read_to_string(work.path().join("certs/ca.crt")).expect("read ca.crt");
    client.write_etc(&format!("docker/certs.d/{host}/ca.crt"), &ca);
    let engine = Dockerd::start_wrapped(&client.enter(&[client.bind_etc("docker")]));
    let mut secrets = Secrets::default();
    secrets.login(ALICE.0, ALICE.1);
    let id = login_ok(&engine, &host, ALICE);
    secrets.add(&id);

    let image = format!("{host}/alice/slow:1");
    let tarball = write_rootfs_tarball(&work.path().join("slow.tar"), SLOW_LAYER);
    engine.docker_ok(["import", path_str(&tarball), &image]);
    let image_id = engine.inspect(&image, "{{.Id}}");

    // Throttle the client's uploads (its end of the link, inside its
    // namespace).
    let tc = require_tool("tc", "iproute2");
    let mut cmd = wrapped_command(&client.exec_prefix(), &tc);
    cmd.args(["qdisc", "add", "dev", lan.client_dev()])
        .args(THROTTLE);
    run_ok(&mut cmd, CMD_TIMEOUT);

    let lines_before = registry.logs().lines().count();
    let started = Instant::now();
    let out = run(&mut engine.command(["push", &image]), DOCKER_TIMEOUT);
    let took = started.elapsed();
    let text = output_text(&out);
    assert!(
        out.status.success(),
        "the slow push failed after {took:?}:\n{text}"
    );
    assert!(text.contains("digest: sha256:"), "{text}");
    eprintln!(
        "the throttled push of {} MiB took {took:?}",
        SLOW_LAYER / MIB
    );
    assert!(
        took > Duration::from_secs(62),
        "the push took only {took:?}: it did not outlive its 60 s token; slow the link down"
    );
    // The log of the push: a token at the start, the upload (one PATCH
    // longer than the token's life), then a new token for what follows.
    let log = registry.logs();
    let during: Vec<&str> = log.lines().skip(lines_before).collect();
    let issued = during
        .iter()
        .filter(|l| token_issued_to(l, ALICE.0))
        .count();
    let long_patch = during.iter().position(|l| {
        l.contains("method=PATCH") && field::<u64>(l, "ms").is_some_and(|ms| ms > 60_000)
    });
    let refreshed =
        long_patch.is_some_and(|i| during[i..].iter().any(|l| token_issued_to(l, ALICE.0)));
    assert!(
        issued >= 2 && refreshed,
        "expected `token issued` for {} before and after an upload longer than 60 s \
         ({issued} issued during the push):\n{}",
        ALICE.0,
        during.join("\n")
    );

    // The image arrived whole: pull it back (downloads are not throttled).
    engine.docker_ok(["rmi", &image]);
    engine.docker_ok(["pull", &image]);
    assert_eq!(engine.inspect(&image, "{{.Id}}"), image_id);

    secrets.assert_absent_from("regproxy (slow push)", &registry.logs());
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `(uid, password)` of a user in the test directory.
fn ldap_user(uid: &str) -> (&'static str, &'static str) {
    *LDAP_USERS
        .iter()
        .find(|(u, _)| *u == uid)
        .unwrap_or_else(|| panic!("no LDAP user {uid}"))
}

/// `[WRAPPER...] env RUST_LOG=debug regproxy serve --config ... --listen
/// LISTEN --data DATA` with TLS and authentication on; debug logging, so
/// the secret search also covers debug lines.
fn start_registry<W: AsRef<std::ffi::OsStr>>(
    wrapper: &[W],
    config: &Path,
    data: &Path,
    listen: &str,
) -> Regproxy {
    let mut prefix: Vec<std::ffi::OsString> =
        wrapper.iter().map(|w| w.as_ref().to_os_string()).collect();
    prefix.push(require_tool("env", "coreutils").into());
    prefix.push("RUST_LOG=debug".into());
    let registry = Regproxy::start_wrapped(
        &prefix,
        &[
            "serve",
            "--config",
            path_str(config),
            "--listen",
            listen,
            "--data",
            path_str(data),
        ],
    );
    assert!(
        registry.url().starts_with("https://"),
        "not serving TLS: {}",
        registry.url()
    );
    registry
}

fn docker_login(engine: &Dockerd, host: &str, user: &str, password: &str) -> Output {
    let mut cmd = engine.command(["login", host, "-u", user, "--password-stdin"]);
    run_with_input(&mut cmd, format!("{password}\n").as_bytes(), DOCKER_TIMEOUT)
}

/// Logs in and checks what Docker stored: an identity token (a refresh
/// token), never the password. Returns the identity token.
fn login_ok(engine: &Dockerd, host: &str, (user, password): (&str, &str)) -> String {
    let out = docker_login(engine, host, user, password);
    let text = output_text(&out);
    assert!(
        out.status.success() && text.contains("Login Succeeded"),
        "docker login as {user}:\n{text}"
    );
    let config =
        fs::read_to_string(engine.cli_config_dir().join("config.json")).expect("read config.json");
    assert!(
        !config.contains(password),
        "config.json holds {user}'s password:\n{config}"
    );
    let (token, auth) = stored_login(engine, host)
        .unwrap_or_else(|| panic!("config.json has no login for {host}:\n{config}"));
    let token = token
        .unwrap_or_else(|| panic!("config.json stores no identitytoken for {host}:\n{config}"));
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    if let Some(auth) = auth {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&auth)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        assert_eq!(
            decoded,
            format!("{user}:"),
            "config.json's `auth` holds more than the user name"
        );
    }
    token
}

/// `(identitytoken, auth)` stored in config.json for `host`, if any entry.
fn stored_login(engine: &Dockerd, host: &str) -> Option<(Option<String>, Option<String>)> {
    let text = fs::read_to_string(engine.cli_config_dir().join("config.json")).ok()?;
    let v: Value = serde_json::from_str(&text).expect("config.json is JSON");
    let entry = v.get("auths")?.get(host)?;
    let field = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Some((field("identitytoken"), field("auth")))
}

/// Imports a small image (busybox + 256 KiB of random data) as `image`,
/// pushes it, removes it, pulls it back and checks it is the same.
fn push_and_pull(engine: &Dockerd, dir: &Path, image: &str) {
    fs::create_dir_all(dir).expect("create image dir");
    let tarball = write_rootfs_tarball(&dir.join("rootfs.tar"), 256 * KIB);
    engine.docker_ok(["import", path_str(&tarball), image]);
    let id = engine.inspect(image, "{{.Id}}");
    let layers = engine.inspect(image, "{{json .RootFS.Layers}}");
    let push = engine.docker_ok(["push", image]);
    assert!(push.contains("digest: sha256:"), "push output:\n{push}");
    engine.docker_ok(["rmi", image]);
    assert!(!engine.docker(["image", "inspect", image]).status.success());
    let pull = engine.docker_ok(["pull", image]);
    assert_eq!(pull.matches("Pull complete").count(), 1, "pull:\n{pull}");
    assert_eq!(engine.inspect(image, "{{.Id}}"), id);
    assert_eq!(engine.inspect(image, "{{json .RootFS.Layers}}"), layers);
}

/// Like [`curl`], for a 200 answer; returns it as JSON.
fn curl_json(ca: &Path, args: &[&str]) -> Value {
    let (status, body) = curl(ca, args);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("curl answer is not JSON ({e}): {body}"))
}

fn str_field(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_string()
}

/// Whether a log line says a token was issued to `user`.
fn token_issued_to(line: &str, user: &str) -> bool {
    line.contains("token issued") && field::<String>(line, "user").is_some_and(|u| u == user)
}

/// A `key=value` field of a log line (numbers and plain words).
fn field<T: std::str::FromStr>(line: &str, key: &str) -> Option<T> {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&prefix))
        .and_then(|v| v.trim_matches('"').parse().ok())
}

/// Everything secret the test saw: passwords, tokens, and the `Basic`
/// header values made from the passwords.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, s: &str) {
        assert!(s.len() >= 6, "too short to search for: {s:?}");
        self.0.push(s.to_string());
    }

    /// A password, and the `Authorization: Basic` value made from it.
    fn login(&mut self, user: &str, password: &str) {
        self.add(password);
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.add(&b64);
    }

    fn assert_absent_from(&self, what: &str, log: &str) {
        assert!(
            log.lines().count() > 10,
            "{what}: suspiciously short log:\n{log}"
        );
        for s in &self.0 {
            // A token's signature part, or a password, anywhere in the log.
            let needle = s.rsplit('.').next().unwrap_or(s);
            if let Some(line) = log
                .lines()
                .find(|l| l.contains(needle) || l.contains(s.as_str()))
            {
                panic!(
                    "{what}: a secret ({} chars) appears in the log:\n{line}",
                    s.len()
                );
            }
        }
        // No Authorization header value at all: no Basic or Bearer value,
        // no JWT (every JWT starts with `eyJ`, base64 of `{"`), and no
        // header dump or log field named authorization.
        for line in log.lines() {
            let lower = line.to_ascii_lowercase();
            let shows_credentials = line.contains("eyJ")
                || lower.contains("basic ")
                || lower.contains("bearer ")
                || lower.contains("authorization:")
                || lower.contains("authorization=")
                || lower.contains("\"authorization\"");
            assert!(
                !shows_credentials,
                "{what}: a log line shows credentials:\n{line}"
            );
        }
    }
}
