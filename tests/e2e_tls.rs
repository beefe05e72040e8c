//! End to end over TLS with real clients and no insecure settings (issue #4):
//! the Docker engine trusts regproxy through `/etc/docker/certs.d`, a second
//! host on a private LAN (the Raspberry Pi case) installs the CA with the
//! commands `regproxy gen-cert` prints and pushes and pulls an arm/v6 image,
//! and podman and skopeo verify the certificate with `--cert-dir`. Every
//! client is also shown to fail with "certificate signed by unknown
//! authority" without the CA, so a server that skipped TLS, or clients that
//! skipped verification, would fail these tests.
//!
//! Why `registry.local` resolves to `::1` and not 127.0.0.1: dockerd looks
//! the registry name up and treats it as insecure (TLS without verification)
//! when an address falls in its built-in insecure range 127.0.0.0/8, so a
//! push to `registry.local -> 127.0.0.1` succeeds with no CA installed
//! (checked with dockerd 20.10). `::1` is loopback too, but outside that
//! range, so verification is on. All tests in this file map the name to the
//! same address, so their /etc/hosts lines never disagree.
//!
//! Long file: each test is one client's whole trust story (Docker, a remote host, podman, skopeo) over the same certificate fixtures.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const KIB: usize = 1024;
const NAME: &str = "registry.local";
/// The address `registry.local` resolves to on this machine (see above).
const NAME_ADDR: &str = "::1";
const UNKNOWN_AUTHORITY: &str = "certificate signed by unknown authority";
/// The remote host's own /etc entries the trust commands write into.
const REMOTE_ETC: [&str; 3] = ["docker", "containers", "containerd"];
const CMD_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn docker_pushes_and_pulls_registry_local_only_with_the_ca_in_certs_d() {
    let work = temp_dir("regproxy-tls-docker-");
    // No gen-cert: on first start, serve makes the CA and a certificate for
    // tls.hosts in certs/ next to the config file.
    let config = write_config(work.path(), "tls:\n  hosts: [registry.local]\n");
    let registry = start_tls(&config, &work.path().join("data"), "[::1]:0");
    let ca = work.path().join("certs/ca.crt");
    assert!(ca.is_file(), "serve did not create {}", ca.display());
    let _hosts = HostsEntry::add(NAME_ADDR, NAME);
    let host = format!("{NAME}:{}", registry.port());
    let engine = Dockerd::start();
    // No insecure registries beyond Docker's built-in loopback range, which
    // `registry.local` (::1) is outside of.
    assert_eq!(
        engine
            .docker_ok([
                "info",
                "--format",
                "{{json .RegistryConfig.InsecureRegistryCIDRs}}"
            ])
            .trim(),
        r#"["127.0.0.0/8"]"#
    );

    let image = format!("{host}/team/app:1");
    let tarball = write_rootfs_tarball(&work.path().join("rootfs.tar"), 256 * KIB);
    engine.docker_ok(["import", path_str(&tarball), &image]);
    let image_id = engine.inspect(&image, "{{.Id}}");
    let layers = engine.inspect(&image, "{{json .RootFS.Layers}}");

    // Without the CA the engine refuses the certificate.
    let push = engine.docker(["push", &image]);
    assert_unknown_authority(&push, "docker push without the CA");

    {
        let _trusted = CertsDir::install(Path::new("/etc/docker/certs.d"), &host, &ca);
        let push = engine.docker_ok(["push", &image]);
        assert!(push.contains("digest: sha256:"), "push output:\n{push}");
        engine.docker_ok(["rmi", &image]);
        assert!(!engine.docker(["image", "inspect", &image]).status.success());
        let pull = engine.docker_ok(["pull", &image]);
        assert_eq!(pull.matches("Pull complete").count(), 1, "pull:\n{pull}");
        assert_eq!(engine.inspect(&image, "{{.Id}}"), image_id);
        assert_eq!(engine.inspect(&image, "{{json .RootFS.Layers}}"), layers);
    }

    // CA removed again: the same engine fails again (no restart, no cache).
    engine.docker_ok(["rmi", &image]);
    let pull = engine.docker(["pull", &image]);
    assert_unknown_authority(&pull, "docker pull after removing the CA");
}

#[test]
fn a_raspberry_pi_on_the_lan_installs_the_printed_ca_and_pushes_and_pulls_arm_v6() {
    // Declared first, dropped last: every process below is stopped before
    // the namespaces, the link and /etc/netns/<name> are removed.
    let lan = Lan::create();
    let (srv, pi) = (&lan.server, &lan.client);
    let work = temp_dir("regproxy-tls-pi-");
    let certs = work.path().join("certs");
    let printed = gen_cert(
        &certs,
        &["--host", NAME, "--ip", lan.server_ip(), "--port", "5000"],
    );
    let script = trust_script(&printed);
    let fingerprint = printed_fingerprint(&printed);
    assert!(
        script.contains(&format!("\"$fp\" != {fingerprint} ")),
        "the download check does not compare with the printed fingerprint {fingerprint}:\n{script}"
    );

    // The registry host: serves only on its LAN address.
    let config = write_config(work.path(), "tls:\n  dir: certs\n");
    let listen = format!("{}:5000", lan.server_ip());
    let registry = Regproxy::start_wrapped(
        &srv.exec_prefix(),
        &[
            "serve",
            "--config",
            path_str(&config),
            "--listen",
            &listen,
            "--data",
            path_str(&work.path().join("data")),
            "--no-auth",
        ],
    );
    assert_eq!(registry.url(), format!("https://{listen}"));

    // The Pi: its own /etc/hosts and /etc/docker, its own engine.
    pi.write_etc(
        "hosts",
        &format!(
            "127.0.0.1 localhost\n::1 localhost\n{} {NAME}\n",
            lan.server_ip()
        ),
    );
    for d in REMOTE_ETC {
        fs::create_dir_all(pi.etc_dir().join(d)).expect("create the Pi's /etc dirs");
    }
    let engine = Dockerd::start_wrapped(&pi.enter(&[pi.bind_etc("hosts"), pi.bind_etc("docker")]));

    // An image that claims linux/arm/v6. (`docker import --platform
    // linux/arm/v6` records the daemon's own architecture in dockerd 20.10,
    // so the image is loaded from a `docker save` archive instead.)
    let image = format!("{NAME}:5000/pi/app:1");
    let arm = write_arm_v6_archive(&work.path().join("arm.tar"), &image, 512 * KIB);
    let loaded = engine.docker_ok(["load", "-i", path_str(&arm.archive)]);
    assert!(loaded.contains(&image), "docker load:\n{loaded}");
    assert_eq!(
        engine.inspect(&image, "{{.Architecture}}/{{.Variant}}"),
        "arm/v6"
    );

    // Before the CA is installed the Pi's engine refuses the certificate,
    // and the registry saw that handshake come from the Pi's address.
    let push = engine.docker(["push", &image]);
    assert_unknown_authority(&push, "the Pi's docker push without the CA");
    let from_pi = format!("peer={}:", lan.client_ip());
    assert!(
        registry.wait_for_log(&from_pi, Duration::from_secs(5)),
        "the registry logged no failed handshake from {from_pi}:\n{}",
        registry.logs()
    );

    // Run the printed commands on the Pi, as its admin would paste them:
    // as root, with no sudo on its PATH, with its own /etc/hosts,
    // /etc/docker, /etc/containers and /etc/containerd.
    let host_dirs = host_certs_dirs_exist();
    let bin = client_bin_dir(&work.path().join("pi-bin"));
    let pi_ca = |d: &str| pi.etc_dir().join(format!("{d}/certs.d/{NAME}:5000/ca.crt"));

    // A wrong fingerprint installs nothing, loudly.
    let out = run_on_remote(pi, &bin, &with_wrong_fingerprint(&script, &fingerprint));
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(MISMATCH),
        "the commands trusted a CA whose fingerprint differs:\n{}",
        output_text(&out)
    );
    for d in REMOTE_ETC {
        assert!(!pi_ca(d).exists(), "{d}");
    }

    let out = run_on_remote(pi, &bin, &script);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("trusted"),
        "the printed trust commands failed on the Pi:\n{script}\n{}",
        output_text(&out)
    );
    for d in REMOTE_ETC {
        assert_same_file(&certs.join("ca.crt"), &pi_ca(d));
    }
    assert_eq!(
        host_certs_dirs_exist(),
        host_dirs,
        "the Pi's commands changed this machine's /etc"
    );

    // Now the Pi pushes, forgets the image, and pulls it back.
    let push = engine.docker_ok(["push", &image]);
    assert!(push.contains("digest: sha256:"), "push output:\n{push}");
    engine.docker_ok(["rmi", &image]);
    assert!(!engine.docker(["image", "inspect", &image]).status.success());
    let pull = engine.docker_ok(["pull", &image]);
    assert_eq!(pull.matches("Pull complete").count(), 1, "pull:\n{pull}");
    assert_eq!(
        engine.inspect(&image, "{{.Os}}/{{.Architecture}}/{{.Variant}}"),
        "linux/arm/v6"
    );
    assert_eq!(engine.inspect(&image, "{{.Id}}"), arm.image_id);
    assert_eq!(
        engine.inspect(&image, "{{json .RootFS.Layers}}"),
        json!([arm.diff_id]).to_string()
    );
}

#[test]
fn a_remote_host_trusts_a_bare_first_serve_by_its_ip_with_the_printed_commands() {
    remote_host_trusts_a_bare_first_serve(Reach::ListenIp);
}

#[test]
fn a_remote_host_trusts_a_bare_first_serve_by_its_local_name_from_regproxy_trust() {
    remote_host_trusts_a_bare_first_serve(Reach::LocalName);
}

/// How the remote host names the registry.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reach {
    /// By the listen address, as the first start prints it.
    ListenIp,
    /// By `<hostname>.local` (mDNS; here from the remote host's hosts
    /// file), with the commands `regproxy trust --host NAME` prints.
    LocalName,
}

/// Issue 12's new user: an empty directory, a bare `regproxy serve --listen
/// <LAN address>:5000`, and a remote host with its own engine and nothing
/// trusted that runs the printed commands exactly as printed (as root, no
/// sudo on its PATH), logs in with the printed name and the printed admin
/// password, and pushes and pulls a linux/arm/v6 image.
fn remote_host_trusts_a_bare_first_serve(reach: Reach) {
    let lan = Lan::create();
    let (srv, pi) = (&lan.server, &lan.client);
    let work = temp_dir("regproxy-first-serve-");
    let cwd = work.path().join("registry");
    fs::create_dir_all(&cwd).expect("create the registry's directory");
    let listen = format!("{}:5000", lan.server_ip());
    let registry = Regproxy::start_wrapped_in(
        Some(&cwd),
        &srv.exec_prefix(),
        &["serve", "--listen", &listen],
    );
    assert_eq!(registry.url(), format!("https://{listen}"));
    let first = registry.startup_stdout().join("\n");
    let password = first
        .lines()
        .find_map(|l| l.strip_prefix("regproxy: created user `admin` with password "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no admin password printed:\n{first}"))
        .to_string();

    let local_name = format!("{}.local", short_hostname());
    let printed = match reach {
        Reach::ListenIp => first.clone(),
        Reach::LocalName => {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_regproxy"));
            cmd.args(["trust", "--host", &local_name, "--port", "5000"])
                .current_dir(&cwd);
            let out = run_ok(&mut cmd, CMD_TIMEOUT);
            assert!(out.stderr.is_empty(), "{}", output_text(&out));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let login = printed_login(&printed);
    let expected = match reach {
        Reach::ListenIp => listen.clone(),
        Reach::LocalName => format!("{local_name}:5000"),
    };
    assert_eq!(login, expected, "{printed}");
    let script = trust_script(&printed);
    let fingerprint = printed_fingerprint(&printed);
    assert_eq!(printed_fingerprint(&first), fingerprint);

    // The remote host: its own /etc/hosts, /etc/docker, /etc/containers,
    // /etc/containerd (all empty of CAs) and its own engine.
    pi.write_etc(
        "hosts",
        &format!(
            "127.0.0.1 localhost\n::1 localhost\n{} {local_name}\n",
            lan.server_ip()
        ),
    );
    for d in REMOTE_ETC {
        fs::create_dir_all(pi.etc_dir().join(d)).expect("create the remote /etc dirs");
    }
    let engine = Dockerd::start_wrapped(&pi.enter(&[pi.bind_etc("hosts"), pi.bind_etc("docker")]));
    let image = format!("{login}/pi/app:1");
    let arm = write_arm_v6_archive(&work.path().join("arm.tar"), &image, 512 * KIB);
    let loaded = engine.docker_ok(["load", "-i", path_str(&arm.archive)]);
    assert!(loaded.contains(&image), "docker load:\n{loaded}");

    // Nothing is trusted yet.
    let out = docker_login(&engine, &login, &password);
    assert_unknown_authority(&out, "docker login before the commands ran");

    // The printed commands, exactly as printed, as root with no sudo.
    let bin = client_bin_dir(&work.path().join("pi-bin"));
    assert!(!run_on_remote(pi, &bin, "command -v sudo").status.success());
    let out = run_on_remote(pi, &bin, &script);
    assert!(
        out.status.success(),
        "the printed commands failed on the remote host:\n{script}\n{}",
        output_text(&out)
    );
    for d in REMOTE_ETC {
        assert_same_file(
            &cwd.join("certs/ca.crt"),
            &pi.etc_dir().join(format!("{d}/certs.d/{login}/ca.crt")),
        );
    }

    // Log in with the printed name, push, forget, pull back.
    let out = docker_login(&engine, &login, &password);
    assert!(
        out.status.success() && output_text(&out).contains("Login Succeeded"),
        "docker login {login}:\n{}",
        output_text(&out)
    );
    let push = engine.docker_ok(["push", &image]);
    assert!(push.contains("digest: sha256:"), "push output:\n{push}");
    engine.docker_ok(["rmi", &image]);
    let pull = engine.docker_ok(["pull", &image]);
    assert_eq!(pull.matches("Pull complete").count(), 1, "pull:\n{pull}");
    assert_eq!(
        engine.inspect(&image, "{{.Os}}/{{.Architecture}}/{{.Variant}}"),
        "linux/arm/v6"
    );
    assert_eq!(engine.inspect(&image, "{{.Id}}"), arm.image_id);
}

/// Runs `script` with `sh -c` on the remote host `pi`, as root with PATH =
/// `bin` (no sudo), and its /etc/hosts and the [`REMOTE_ETC`] dirs bound
/// from /etc/netns/<pi>/. (Its temp file comes from `mktemp` in /tmp.)
fn run_on_remote(pi: &Netns, bin: &Path, script: &str) -> Output {
    let mut setup = vec![pi.bind_etc("hosts")];
    setup.extend(REMOTE_ETC.iter().map(|d| pi.bind_etc(d)));
    // The setup runs with this machine's PATH; the script with `bin` only.
    let mut cmd = wrapped_command(&pi.enter(&setup), "env");
    cmd.arg("-i")
        .arg(format!("PATH={}", path_str(bin)))
        .args(["sh", "-c", script]);
    run(&mut cmd, CMD_TIMEOUT)
}

fn docker_login(engine: &Dockerd, host: &str, password: &str) -> Output {
    let mut cmd = engine.command(["login", host, "-u", "admin", "--password-stdin"]);
    run_with_input(&mut cmd, format!("{password}\n").as_bytes(), CMD_TIMEOUT)
}

/// The machine's short host name (the first label), as mDNS uses it.
fn short_hostname() -> String {
    let h = fs::read_to_string("/proc/sys/kernel/hostname").expect("read the host name");
    h.trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

#[test]
fn podman_and_skopeo_verify_the_certificate_with_cert_dir() {
    let work = temp_dir("regproxy-tls-oci-");
    let certs = work.path().join("certs");
    gen_cert(&certs, &["--host", NAME, "--port", "5000"]);
    let config = write_config(work.path(), "tls:\n  dir: certs\n");
    let registry = start_tls(&config, &work.path().join("data"), "[::1]:0");
    let _hosts = HostsEntry::add(NAME_ADDR, NAME);
    let host = format!("{NAME}:{}", registry.port());
    // A client cert dir holds just the CA (no client certificate).
    let cert_dir = work.path().join("client-certs");
    fs::create_dir_all(&cert_dir).expect("create cert dir");
    fs::copy(certs.join("ca.crt"), cert_dir.join("ca.crt")).expect("copy ca.crt");
    let cert_dir = path_str(&cert_dir);

    let skopeo = Skopeo::new();
    let src = write_oci_single(&work.path().join("src"), "1", 256 * KIB);
    let remote = format!("docker://{host}/team/oci:1");

    // skopeo without the CA: refused.
    let out = skopeo.run(["copy", &src.skopeo_ref(), &remote]);
    assert_unknown_authority(&out, "skopeo copy without --dest-cert-dir");

    // skopeo with --cert-dir: OCI layout -> registry -> OCI layout, unchanged.
    skopeo.run_ok([
        "copy",
        "--dest-cert-dir",
        cert_dir,
        &src.skopeo_ref(),
        &remote,
    ]);
    let back = work.path().join("back");
    skopeo.run_ok([
        "copy",
        "--src-cert-dir",
        cert_dir,
        &remote,
        &format!("oci:{}:1", back.display()),
    ]);
    let blobs = assert_same_oci_image(&src.dir, "1", &back, "1");
    assert_eq!(blobs, src.blobs.len());

    // podman: refused without the CA, then pull, push and pull back with it.
    let podman = Podman::new();
    let from_skopeo = format!("{host}/team/oci:1");
    let out = podman.run(["pull", &from_skopeo]);
    assert_unknown_authority(&out, "podman pull without --cert-dir");
    podman.run_ok(["pull", "--cert-dir", cert_dir, &from_skopeo]);
    let manifest: Value = serde_json::from_slice(&src.manifest).expect("manifest JSON");
    let config_digest = manifest["config"]["digest"].as_str().unwrap_or_default();
    let image_id = podman.run_ok(["image", "inspect", "--format", "{{.Id}}", &from_skopeo]);
    assert_eq!(format!("sha256:{}", image_id.trim()), config_digest);
    let layers = podman.run_ok([
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        &from_skopeo,
    ]);

    let pushed = format!("{host}/team/podman:1");
    let out = podman.run(["push", "--format", "oci", &from_skopeo, &pushed]);
    assert_unknown_authority(&out, "podman push without --cert-dir");
    podman.run_ok([
        "push",
        "--cert-dir",
        cert_dir,
        "--format",
        "oci",
        &from_skopeo,
        &pushed,
    ]);
    podman.run_ok(["rmi", &from_skopeo]);
    assert!(!podman
        .run(["image", "exists", &from_skopeo])
        .status
        .success());
    podman.run_ok(["pull", "--cert-dir", cert_dir, &pushed]);
    let pulled_id = podman.run_ok(["image", "inspect", "--format", "{{.Id}}", &pushed]);
    assert_eq!(
        pulled_id, image_id,
        "podman's pushed image came back changed"
    );
    let pulled_layers = podman.run_ok([
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        &pushed,
    ]);
    assert_eq!(pulled_layers, layers);
}

/// `regproxy serve --config CONFIG --listen LISTEN --data DATA --no-auth`
/// (TLS, as configured), checked to announce https.
fn start_tls(config: &Path, data: &Path, listen: &str) -> Regproxy {
    let registry = Regproxy::start_with_args(&[
        "serve",
        "--config",
        path_str(config),
        "--listen",
        listen,
        "--data",
        path_str(data),
        "--no-auth",
    ]);
    assert!(
        registry.url().starts_with("https://"),
        "not serving TLS: {}",
        registry.url()
    );
    registry
}

/// `regproxy gen-cert --out DIR ARGS`; returns what it printed.
fn gen_cert(out: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regproxy"));
    cmd.arg("gen-cert").arg("--out").arg(out).args(args);
    let out = run_ok(&mut cmd, CMD_TIMEOUT);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether this machine's own certs.d directories for `registry.local:5000`
/// exist (the Pi's commands must not touch them).
fn host_certs_dirs_exist() -> Vec<bool> {
    REMOTE_ETC
        .iter()
        .map(|d| Path::new(&format!("/etc/{d}/certs.d/{NAME}:5000")).exists())
        .collect()
}

fn assert_unknown_authority(out: &Output, what: &str) {
    let text = output_text(out);
    assert!(!out.status.success(), "{what} succeeded:\n{text}");
    assert!(
        text.contains(UNKNOWN_AUTHORITY),
        "{what} failed, but not with {UNKNOWN_AUTHORITY:?}:\n{text}"
    );
}

/// A `docker save` archive of a one-layer linux/arm/v6 image.
struct ArmImage {
    archive: PathBuf,
    /// `sha256:` + the config's digest: the image ID Docker reports.
    image_id: String,
    /// `sha256:` + the uncompressed layer's digest.
    diff_id: String,
}

fn write_arm_v6_archive(path: &Path, tag: &str, data_size: usize) -> ArmImage {
    let rootfs = path.with_extension("rootfs.tar");
    let layer = fs::read(write_rootfs_tarball(&rootfs, data_size)).expect("read layer");
    let layer_hex = sha256_hex(&layer);
    let config = json!({
        "architecture": "arm",
        "variant": "v6",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/busybox", "sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_hex}")]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "regproxy e2e_tls"}],
    });
    let config = serde_json::to_vec(&config).expect("serialize config");
    let config_hex = sha256_hex(&config);
    let manifest = json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [tag],
        "Layers": [format!("{layer_hex}/layer.tar")],
    }]);
    let manifest = serde_json::to_vec(&manifest).expect("serialize manifest");
    let archive = tar_archive(&[
        (&format!("{layer_hex}/"), &[]),
        (&format!("{layer_hex}/layer.tar"), &layer),
        (&format!("{config_hex}.json"), &config),
        ("manifest.json", &manifest),
    ]);
    fs::write(path, archive).expect("write image archive");
    ArmImage {
        archive: path.to_path_buf(),
        image_id: format!("sha256:{config_hex}"),
        diff_id: format!("sha256:{layer_hex}"),
    }
}
