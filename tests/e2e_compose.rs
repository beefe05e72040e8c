//! The deployment as the README describes it, with the real Docker engine
//! and Debian's docker-compose 1.29: the statically linked release binary,
//! the repository's own `Dockerfile` (FROM scratch: nothing is pulled) and
//! `compose.yaml`, `docker-compose build` and `up -d`, the first admin
//! password read from `docker-compose logs`, the CA the container made in
//! the mounted `./certs` trusted by the engine, `docker login`, a push and
//! a pull over verified TLS, `down` with the data left on the host, and a
//! second `up` that serves the same images with the same CA and users.
//!
//! The host ports are `REGPROXY_PORT=0` and `REGPROXY_ADMIN_PORT=0`
//! (compose.yaml's variables): the engine picks free ones and
//! `docker-compose port` names them. The registry is reached as
//! `registry.local` mapped to `::1`, outside the engine's built-in insecure
//! range 127.0.0.0/8, so the push really verifies the certificate (see
//! tests/e2e_tls.rs).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const NAME: &str = "registry.local";
const NAME_ADDR: &str = "::1";
const KIB: usize = 1024;
const START_TIMEOUT: Duration = Duration::from_secs(60);
const ADMIN_LINE: &str = "created user `admin` with password ";

/// The settings a person writes next to compose.yaml (paths relative to
/// /srv/regproxy in the container).
const PROXY_YAML: &str = "\
listen: 0.0.0.0:5000
storage:
  filesystem:
    root: ./data
tls:
  enabled: true
  dir: ./certs
  hosts: [registry.local]
auth:
  enabled: true
  htpasswd: ./htpasswd
";

/// The first admin password, from the `created user admin` line.
fn admin_password(logs: &str) -> String {
    logs.lines()
        .find_map(|l| l.split_once(ADMIN_LINE).map(|(_, r)| r))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {ADMIN_LINE:?} in the logs:\n{logs}"))
        .to_string()
}

fn login(engine: &Dockerd, host: &str, password: &str) {
    let mut cmd = engine.command(["login", host, "-u", "admin", "--password-stdin"]);
    let out = run_with_input(&mut cmd, password.as_bytes(), Duration::from_secs(60));
    assert!(
        out.status.success(),
        "docker login {host} failed:\n{}",
        output_text(&out)
    );
}

/// Blob files (`data`) under the mounted data directory.
fn blob_files(data: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![data.join("docker/registry/v2/blobs")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "data") {
                out.push(
                    p.parent()
                        .unwrap()
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out
}

/// Waits until the service logs its listening line; returns the logs.
fn wait_listening(compose: &Compose) -> String {
    compose.wait_for_log("regproxy: listening on https://", START_TIMEOUT)
}

#[test]
fn compose_builds_the_image_offline_and_serves_login_push_pull_across_down_and_up() {
    let started = Instant::now();
    let binary = build_static_binary();
    let work = short_temp_dir("rpcompose");
    let dir = work.path();
    compose_dir(dir, &binary, PROXY_YAML);

    // Declared before the project: the project's guard runs `down` first.
    let engine = Dockerd::start();
    let _hosts = HostsEntry::add(NAME_ADDR, NAME);
    let compose = Compose::new(
        &engine,
        dir,
        &[("REGPROXY_PORT", "0"), ("REGPROXY_ADMIN_PORT", "0")],
    );
    let build = compose.run_ok(["build"]);
    assert!(
        !build.contains("Pulling"),
        "the image build pulled something:\n{build}"
    );
    compose.run_ok(["up", "-d"]);
    let logs = wait_listening(&compose);
    let password = admin_password(&logs);
    assert!(
        !logs.contains("getaddrinfo") && !logs.contains("NSS"),
        "the static binary warns about name lookups:\n{logs}"
    );
    let ca = dir.join("certs/ca.crt");
    let ca_first = std::fs::read(&ca).expect("the container made certs/ca.crt on the host");
    let htpasswd = std::fs::read_to_string(dir.join("htpasswd")).expect("read htpasswd");
    assert!(htpasswd.starts_with("admin:$2"), "htpasswd: {htpasswd:?}");

    // The admin listener is published on the host's loopback.
    let admin = compose.host_port("regproxy", 5001, false);
    let health = http_get(&format!("http://127.0.0.1:{admin}/healthz"));
    assert_eq!(health.status, 200, "{}", health.text());

    let port = compose.host_port("regproxy", 5000, true);
    let host = format!("{NAME}:{port}");
    let trusted = CertsDir::install(Path::new("/etc/docker/certs.d"), &host, &ca);
    login(&engine, &host, &password);

    let image = format!("{host}/team/app:1");
    let tarball = write_rootfs_tarball(&dir.join("rootfs.tar"), 256 * KIB);
    engine.docker_ok(["import", path_str(&tarball), &image]);
    let image_id = engine.inspect(&image, "{{.Id}}");
    let push = engine.docker_ok(["push", &image]);
    assert!(push.contains("digest: sha256:"), "push output:\n{push}");
    engine.docker_ok(["rmi", &image]);
    let pull = engine.docker_ok(["pull", &image]);
    assert_eq!(pull.matches("Pull complete").count(), 1, "pull:\n{pull}");
    assert_eq!(engine.inspect(&image, "{{.Id}}"), image_id);

    // `down`: the container is gone, the data stays on the host.
    compose.run_ok(["down", "--timeout", "20"]);
    drop(trusted);
    let blobs = blob_files(&dir.join("data"));
    let config_hex = image_id.trim_start_matches("sha256:");
    assert!(
        blobs.len() >= 3 && blobs.iter().any(|b| b == config_hex),
        "the data dir lacks the pushed blobs (config {config_hex}): {blobs:?}"
    );

    // `up` again: same CA, same users (no new admin password), same images.
    compose.run_ok(["up", "-d"]);
    let logs = wait_listening(&compose);
    assert_eq!(
        logs.matches(ADMIN_LINE).count(),
        0,
        "a second start made a new admin:\n{logs}"
    );
    assert_eq!(std::fs::read(&ca).expect("read ca.crt"), ca_first);
    let port = compose.host_port("regproxy", 5000, true);
    let host2 = format!("{NAME}:{port}");
    let _trusted = CertsDir::install(Path::new("/etc/docker/certs.d"), &host2, &ca);
    login(&engine, &host2, &password);
    let image2 = format!("{host2}/team/app:1");
    engine.docker_ok(["rmi", &image]);
    let pull = engine.docker_ok(["pull", &image2]);
    assert!(pull.contains("Pull complete"), "pull:\n{pull}");
    assert_eq!(engine.inspect(&image2, "{{.Id}}"), image_id);
    eprintln!("compose test took {:?}", started.elapsed());
}
