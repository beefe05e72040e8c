//! The command line as a user meets it: `config check`, `gen-cert`, and the
//! startup failures of `serve`. Every failure exits non-zero with
//! `regproxy: error: ...` and a `hint: ...`, never a panic.
//!
//! Long file: one test per command-line behaviour, sharing the run-and-check helpers at the top.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use regproxy::tls::certs;

fn regproxy(cwd: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regproxy"));
    cmd.args(args).current_dir(cwd);
    common::run(&mut cmd, Duration::from_secs(30))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// A failure as the brief wants it: the exit code, an error line, a hint,
/// and no panic.
fn assert_clean_failure(o: &Output, code: i32) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(err.starts_with("regproxy: error: "), "{err}");
    assert!(err.contains("\nhint: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn the_repository_example_config_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.yaml");
    let dir = tempfile::tempdir().unwrap();
    let o = regproxy(
        dir.path(),
        &["config", "check", "--config", example.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(": OK"), "{}", stdout(&o));
}

#[test]
fn config_check_lists_every_problem_with_its_line_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("proxy.yaml"),
        "listen: nowhere\nstorage:\n  filesystem:\n    rooot: /x\ntls:\n  cert: a.crt\nbogus: 1\n",
    )
    .unwrap();
    let o = regproxy(dir.path(), &["config", "check"]);
    let err = assert_clean_failure(&o, 64);
    for line in [
        "proxy.yaml:1:",
        "proxy.yaml:4:",
        "proxy.yaml:7:",
        "proxy.yaml:5:",
    ] {
        assert!(err.contains(line), "missing {line} in {err}");
    }
    assert!(err.contains("rooot") && err.contains("bogus"), "{err}");

    // serve refuses the same file the same way.
    let o = regproxy(dir.path(), &["serve", "--listen", "127.0.0.1:0"]);
    assert_clean_failure(&o, 64);

    let o = regproxy(dir.path(), &["config", "check", "--config", "missing.yaml"]);
    let err = assert_clean_failure(&o, 64);
    assert!(err.contains("missing.yaml"), "{err}");
}

#[test]
fn serve_on_a_busy_port_says_so() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let o = regproxy(
        dir.path(),
        &[
            "serve",
            "--no-tls",
            "--no-auth",
            "--listen",
            &addr,
            "--data",
            "d",
        ],
    );
    let err = assert_clean_failure(&o, 1);
    assert!(
        err.contains(&addr) && err.contains("another process"),
        "{err}"
    );
}

#[test]
fn serve_with_a_key_that_does_not_match_says_which_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let mut names = certs::SubjectNames::default();
    names.add_host("a.local").unwrap();
    certs::issue(&a, &names, 30, false).unwrap();
    certs::issue(&b, &names, 30, false).unwrap();
    std::fs::write(
        dir.path().join("proxy.yaml"),
        "tls:\n  cert: a/server.crt\n  key: b/server.key\n",
    )
    .unwrap();
    let o = regproxy(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0", "--data", "d"],
    );
    let err = assert_clean_failure(&o, 1);
    assert!(
        err.contains("b/server.key") && err.contains("a/server.crt"),
        "{err}"
    );
}

#[test]
fn gen_cert_makes_files_and_prints_the_fingerprint_and_trust_commands() {
    let dir = tempfile::tempdir().unwrap();
    let o = regproxy(
        dir.path(),
        &[
            "gen-cert",
            "--host",
            "registry.local",
            "--ip",
            "192.168.1.10",
            "--port",
            "5443",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let ca_pem = std::fs::read_to_string(dir.path().join("certs/ca.crt")).unwrap();
    let fp = certs::Fingerprint::of_der(&certs::pem_to_der(&ca_pem).unwrap());
    assert!(out.contains(&fp.colon_hex()), "{out}");
    assert_eq!(
        common::printed_fingerprint(&out),
        fp.colon_hex(),
        "one fingerprint format everywhere: {out}"
    );
    let lower_hex: String = fp.0.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!out.contains(&lower_hex), "a second format: {out}");
    assert!(
        out.contains("/etc/docker/certs.d/registry.local:5443/ca.crt"),
        "{out}"
    );
    assert!(
        out.contains("/etc/containers/certs.d/registry.local:5443/ca.crt"),
        "{out}"
    );
    assert!(
        out.contains("update-ca-certificates") && out.contains("k3s") && out.contains("containerd")
    );
    assert!(out.contains("created a new CA"));

    // Again, for another host: same CA, new server certificate.
    let o = regproxy(dir.path(), &["gen-cert", "--host", "other.local"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("using the existing CA"));
    assert!(stdout(&o).contains(&fp.colon_hex()));
}

#[test]
fn gen_cert_usage_errors_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let o = regproxy(dir.path(), &["gen-cert"]);
    let err = assert_clean_failure(&o, 1);
    assert!(err.contains("--host"), "{err}");

    let o = regproxy(
        dir.path(),
        &["gen-cert", "--host", "a.local", "--days", "0"],
    );
    assert_eq!(o.status.code(), Some(2), "clap usage error");
    assert!(!stderr(&o).contains("panicked"));

    let o = regproxy(dir.path(), &["gen-cert", "--host", "bad name!"]);
    assert_clean_failure(&o, 1);
}

#[test]
fn first_start_makes_certificates_and_prints_how_to_trust_them() {
    let data = tempfile::tempdir().unwrap();
    let server = common::Regproxy::start_with_args(&[
        "serve",
        "--no-auth",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.path().to_str().unwrap(),
    ]);
    assert_eq!(server.url().split("://").next(), Some("https"));
    let out = server.startup_stdout().join("\n");
    let fp_line = out
        .lines()
        .find(|l| l.contains("CA fingerprint (SHA-256): "))
        .unwrap_or_else(|| panic!("no fingerprint in {out}"));
    assert!(out.contains(&format!(":{}/ca.crt", server.port())), "{out}");
    assert!(
        out.contains("/etc/docker/certs.d/") && out.contains("update-ca-certificates"),
        "{out}"
    );
    assert!(fp_line.len() > 90, "{fp_line}");
}

#[test]
fn non_loopback_without_tls_or_auth_is_warned_about_loudly() {
    let data = tempfile::tempdir().unwrap();
    let server = common::Regproxy::start_with_args(&[
        "serve",
        "--no-tls",
        "--no-auth",
        "--listen",
        "0.0.0.0:0",
        "--data",
        data.path().to_str().unwrap(),
    ]);
    assert!(
        server.wait_for_log("SERVING PLAIN HTTP", Duration::from_secs(10)),
        "{}",
        server.logs()
    );
    assert!(
        server.logs().contains("SERVING WITHOUT AUTHENTICATION"),
        "{}",
        server.logs()
    );

    let quiet = common::Regproxy::start(data.path(), &[]);
    assert!(quiet.wait_for_log("storage", Duration::from_secs(10)));
    assert!(
        !quiet.logs().contains("SERVING"),
        "loopback is not warned about"
    );
}

#[test]
fn a_certificate_that_expires_soon_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let mut names = certs::SubjectNames::default();
    names.add_host("registry.local").unwrap();
    certs::issue(&dir.path().join("certs"), &names, 10, false).unwrap();
    let config = common::write_config(dir.path(), "tls:\n  dir: certs\nauth:\n  enabled: false\n");
    let server = common::serve_config(&config, &dir.path().join("data"));
    assert!(
        server.wait_for_log("expires soon", Duration::from_secs(10)),
        "{}",
        server.logs()
    );
}

/// Runs `cmd` in a fresh tmux session and answers its two password prompts
/// like a person at a terminal; returns what the screen showed.
fn type_passwords_in_a_terminal(cmd: &str, first: &str, second: &str) -> String {
    let tmux = common::require_tool("tmux", "tmux");
    let session = format!("regproxy-test-{}", std::process::id());
    let tmux_run = |args: &[&str]| {
        let out = Command::new(&tmux).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // `; sleep 30` keeps the pane open to read the result; killed below.
    tmux_run(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "200",
        "-y",
        "20",
        &format!("{cmd}; echo EXIT=$?; sleep 30"),
    ]);
    struct Kill<'a>(&'a Path, &'a str);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = Command::new(self.0)
                .args(["kill-session", "-t", self.1])
                .output();
        }
    }
    let _kill = Kill(&tmux, &session);
    let screen = || tmux_run(&["capture-pane", "-p", "-t", &session]);
    let wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let s = screen();
            if s.contains(needle) {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {needle:?} on screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("Password:");
    tmux_run(&["send-keys", "-t", &session, first, "Enter"]);
    wait_for("Password again:");
    tmux_run(&["send-keys", "-t", &session, second, "Enter"]);
    wait_for("EXIT=")
}

#[test]
fn htpasswd_add_prompts_twice_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    let bin = env!("CARGO_BIN_EXE_regproxy");
    let cmd = format!(
        "{bin} htpasswd add carol --cost 4 --file {}",
        file.display()
    );

    let screen = type_passwords_in_a_terminal(&cmd, "Tr0ub4dor-and-3", "Tr0ub4dor-and-3");
    assert!(
        screen.contains("added user carol") && screen.contains("EXIT=0"),
        "{screen}"
    );
    assert!(
        !screen.contains("Tr0ub4dor"),
        "the password was echoed:\n{screen}"
    );
    let line = std::fs::read_to_string(&file).unwrap();
    let hash = line.trim().strip_prefix("carol:").unwrap();
    assert!(regproxy::auth::htpasswd::verify_password(
        &regproxy::auth::secret::Secret::new("Tr0ub4dor-and-3"),
        hash
    ));

    let screen = type_passwords_in_a_terminal(&cmd, "one-password", "another-one");
    assert!(
        screen.contains("do not match") && screen.contains("EXIT=1"),
        "{screen}"
    );
    assert!(
        !screen.contains("one-password") && !screen.contains("another-one"),
        "{screen}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        line,
        "file unchanged"
    );
}

#[test]
fn a_password_typed_as_the_user_name_is_not_logged() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    common::add_users(&dir.path().join("htpasswd"), &[("alice", "right-pw")]);
    let config = common::write_config(
        dir.path(),
        "tls:\n  enabled: false\nauth:\n  htpasswd: htpasswd\n",
    );
    let server = common::serve_config(&config, &dir.path().join("data"));
    let basic = |user: &str, pw: &str| {
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        common::http_request(
            "GET",
            &format!("{}/v2/", server.url()),
            &[("Authorization", &format!("Basic {v}"))],
            None,
        )
    };
    assert_eq!(basic("Oops-MyPassw0rd!", "").status, 401);
    assert_eq!(basic("Oops-MyPassw0rd!", "x").status, 401);
    assert_eq!(basic("alice", "wrong-pw").status, 401);
    assert!(server.wait_for_log("failed login: wrong password", Duration::from_secs(10)));
    let logs = server.logs();
    assert!(logs.contains("failed login: unknown user"), "{logs}");
    assert!(
        logs.contains("alice"),
        "a real user's name is logged: {logs}"
    );
    for secret in ["Oops-MyPassw0rd!", "wrong-pw", "right-pw"] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the log:\n{logs}"
        );
    }
}

// ---------------------------------------------------------------------------
// Issue 12: a remote host trusts the CA and logs in by a name it can reach
// ---------------------------------------------------------------------------

/// The server certificate's names (leaf of `dir/server.crt`).
fn server_cert_names(dir: &Path) -> certs::CertInfo {
    let pem = std::fs::read_to_string(dir.join("server.crt")).unwrap();
    certs::inspect(&certs::pem_to_der(&pem).unwrap()).unwrap()
}

/// The machine's short host name, as the mDNS `.local` name uses it.
fn short_hostname() -> String {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    h.trim().split('.').next().unwrap().to_ascii_lowercase()
}

/// `regproxy serve ARGS` started from an empty working directory (where it
/// makes `./certs` and `./htpasswd`); returns the server and that directory.
fn first_serve(args: &[&str]) -> (common::Regproxy, std::path::PathBuf) {
    let mut all = vec!["serve"];
    all.extend_from_slice(args);
    let server = common::Regproxy::start_with_args(&all);
    let cwd = server.log_path().parent().unwrap().to_path_buf();
    (server, cwd)
}

#[test]
fn a_first_serve_on_an_ip_prints_that_ip_everywhere_and_puts_it_in_the_certificate() {
    let data = tempfile::tempdir().unwrap();
    let (server, cwd) = first_serve(&[
        "--listen",
        "127.0.0.2:0",
        "--data",
        data.path().to_str().unwrap(),
    ]);
    let out = server.startup_stdout().join("\n");
    let hp = format!("127.0.0.2:{}", server.port());
    assert_eq!(common::printed_login(&out), hp, "{out}");
    let script = common::trust_script(&out);
    assert!(script.contains(&format!("https://{hp}/ca.crt")), "{script}");
    for d in common::CLIENT_CERT_DIRS {
        assert!(script.contains(&format!("{d}/{hp}/ca.crt")), "{script}");
    }
    assert_eq!(
        script.matches("certs.d/").count(),
        script.matches(&format!("certs.d/{hp}/")).count(),
        "the commands name another host:\n{script}"
    );
    assert!(
        !script.contains(&format!("{}:", short_hostname())),
        "{script}"
    );

    let names = server_cert_names(&cwd.join("certs"));
    assert!(
        names.ips.contains(&"127.0.0.2".parse().unwrap()),
        "the certificate lacks the listen address: {names:?}"
    );
    let local = format!("{}.local", short_hostname());
    assert!(
        names.dns_names.contains(&local),
        "the certificate lacks {local}: {names:?}"
    );
}

#[test]
fn the_printed_trust_commands_refuse_a_wrong_fingerprint_loudly_and_install_as_root_or_with_sudo() {
    let data = tempfile::tempdir().unwrap();
    let (server, cwd) = first_serve(&[
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.path().to_str().unwrap(),
    ]);
    let out = server.startup_stdout().join("\n");
    let hp = format!("127.0.0.1:{}", server.port());
    let script = common::trust_script(&out);
    let fp = common::printed_fingerprint(&out);
    let ca_path = cwd.join("certs/ca.crt");
    let ca = std::fs::read(&ca_path).unwrap();

    // One format everywhere: what openssl prints is what regproxy prints,
    // and what the commands compare against.
    let openssl = common::require_tool("openssl", "openssl");
    let o = common::run_ok(
        Command::new(openssl)
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&ca_path),
        Duration::from_secs(30),
    );
    assert!(
        stdout(&o).trim().ends_with(&format!("={fp}")),
        "{}",
        stdout(&o)
    );
    assert!(script.contains(&fp), "{script}");

    // A client shell as root with no sudo anywhere on its PATH.
    let shell = common::ClientShell::new();
    assert!(!shell.run("command -v sudo").status.success());

    let o = shell.run(&common::with_wrong_fingerprint(&script, &fp));
    let text = common::output_text(&o);
    assert!(
        !o.status.success(),
        "a wrong fingerprint was trusted:\n{text}"
    );
    assert!(stderr(&o).contains(common::MISMATCH), "{text}");
    assert_eq!(shell.installed_files(), Vec::<String>::new(), "{text}");

    let o = shell.run(&script);
    let text = common::output_text(&o);
    assert!(o.status.success(), "{script}\n{text}");
    assert!(stdout(&o).contains("trusted"), "{text}");
    let want: Vec<String> = common::CLIENT_CERT_DIRS
        .iter()
        .map(|d| format!("{d}/{hp}/ca.crt"))
        .collect();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(shell.installed_files(), want_sorted);
    for path in &want {
        let rel = path.strip_prefix("/etc/").unwrap();
        assert_eq!(shell.installed(rel).as_deref(), Some(&ca[..]), "{path}");
    }

    // As a user (id -u is not 0), the same commands go through sudo.
    shell.add_program("id", "#!/bin/sh\necho 1000\n");
    shell.add_program("sudo", "#!/bin/sh\necho \"sudo $*\" >&2\nexec \"$@\"\n");
    let o = shell.run(&script);
    let text = common::output_text(&o);
    assert!(o.status.success(), "{text}");
    assert_eq!(stderr(&o).matches("sudo install ").count(), 3, "{text}");
    assert_eq!(shell.installed_files(), want_sorted);
}

#[test]
fn every_start_prints_the_ca_fingerprint_and_where_the_trust_commands_are() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(dir.path(), "tls:\n  dir: certs\nauth:\n  enabled: false\n");
    let first = common::serve_config(&config, &dir.path().join("data"));
    let fp = common::printed_fingerprint(&first.startup_stdout().join("\n"));
    drop(first);
    let second = common::serve_config(&config, &dir.path().join("data"));
    let out = second.startup_stdout().join("\n");
    assert_eq!(common::printed_fingerprint(&out), fp, "{out}");
    assert!(
        out.contains(&format!(
            "regproxy trust --host 127.0.0.1 --port {}",
            second.port()
        )),
        "{out}"
    );
}

#[test]
fn gen_cert_after_a_first_serve_keeps_the_names_and_prints_the_final_list() {
    let data = tempfile::tempdir().unwrap();
    let (server, cwd) = first_serve(&[
        "--no-auth",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.path().to_str().unwrap(),
    ]);
    let before = server_cert_names(&cwd.join("certs"));
    assert!(before.dns_names.contains(&"localhost".to_string()));

    let o = regproxy(
        &cwd,
        &["gen-cert", "--host", "registry.local", "--ip", "192.0.2.2"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let after = server_cert_names(&cwd.join("certs"));
    for name in before
        .dns_names
        .iter()
        .chain(["registry.local".to_string()].iter())
    {
        assert!(after.dns_names.contains(name), "{name} dropped: {after:?}");
        assert!(out.contains(name.as_str()), "{name} not printed:\n{out}");
    }
    for ip in before
        .ips
        .iter()
        .chain(["192.0.2.2".parse().unwrap()].iter())
    {
        assert!(after.ips.contains(ip), "{ip} dropped: {after:?}");
        assert!(out.contains(&ip.to_string()), "{ip} not printed:\n{out}");
    }

    // The running server reloads the new certificate, and a client that
    // verifies `localhost` against the CA still gets in.
    assert!(
        server.wait_for_log("reloaded the TLS certificate", Duration::from_secs(20)),
        "{}",
        server.logs()
    );
    let curl = common::require_tool("curl", "curl");
    let o = common::run(
        Command::new(curl)
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(cwd.join("certs/ca.crt"))
            .arg(format!("https://localhost:{}/v2/", server.port())),
        Duration::from_secs(30),
    );
    assert_eq!(stdout(&o), "200", "{}", common::output_text(&o));

    // --replace-names issues for exactly the names given.
    let o = regproxy(
        &cwd,
        &["gen-cert", "--host", "registry.local", "--replace-names"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let replaced = server_cert_names(&cwd.join("certs"));
    assert_eq!(replaced.dns_names, vec!["registry.local"]);
    assert!(replaced.ips.is_empty(), "{replaced:?}");
}

#[test]
fn trust_prints_the_client_commands_for_a_name_without_reissuing_and_warns_about_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    let o = regproxy(
        dir.path(),
        &["gen-cert", "--host", "registry.local", "--ip", "192.0.2.2"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let fp = common::printed_fingerprint(&stdout(&o));
    let files = ["ca.crt", "ca.key", "server.crt", "server.key"];
    let read_all = || {
        files
            .iter()
            .map(|f| std::fs::read(dir.path().join("certs").join(f)).unwrap())
            .collect::<Vec<_>>()
    };
    let before = read_all();

    let o = regproxy(
        dir.path(),
        &["trust", "--host", "registry.local", "--port", "5443"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(common::printed_fingerprint(&out), fp);
    let script = common::trust_script(&out);
    for d in common::CLIENT_CERT_DIRS {
        assert!(
            script.contains(&format!("{d}/registry.local:5443/ca.crt")),
            "{script}"
        );
    }
    assert_eq!(common::printed_login(&out), "registry.local:5443");
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));

    // An address in the certificate, and the port from the config (5000).
    let o = regproxy(dir.path(), &["trust", "--host", "192.0.2.2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(common::printed_login(&stdout(&o)), "192.0.2.2:5000");
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));

    // A name the certificate does not hold: the commands, and a warning
    // with the command that adds it.
    let o = regproxy(dir.path(), &["trust", "--host", "nas.example"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(common::printed_login(&stdout(&o)), "nas.example:5000");
    let err = stderr(&o);
    assert!(
        err.contains("warning: nas.example is not in the server certificate")
            && err.contains("regproxy gen-cert --host nas.example"),
        "{err}"
    );
    assert_eq!(read_all(), before, "trust changed the certificate files");
}

#[test]
fn config_check_names_the_line_of_the_bad_key_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("proxy.yaml"),
        "\
groups:
  team-a: [alice]
access:
  default: maybe
  rules:
    - subjects: [group:team-a]
      repositories: [team-a]
      actions: [pull, fly]
    - subjects: [group:nobody]
      repositories: [team-b]
      actions: [pull]
",
    )
    .unwrap();
    let o = regproxy(dir.path(), &["config", "check"]);
    let err = assert_clean_failure(&o, 64);
    assert!(
        err.contains("proxy.yaml:8: access: rule 1: unknown action \"fly\""),
        "{err}"
    );
    assert!(
        err.contains("proxy.yaml:9: access: group \"nobody\" is never defined"),
        "{err}"
    );
    assert!(
        err.contains("proxy.yaml:4: access.default \"maybe\": use deny or pull"),
        "{err}"
    );
    assert!(!err.contains("access: access."), "{err}");

    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.yaml");
    let o = regproxy(
        dir.path(),
        &["config", "check", "--config", example.to_str().unwrap()],
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    let auth = out
        .lines()
        .find(|l| l.trim_start().starts_with("auth:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        auth.contains("Docker token service") && auth.contains("users from htpasswd"),
        "{auth}"
    );
    assert!(!auth.contains('[') && !auth.contains("Token"), "{auth}");
}

#[test]
fn a_first_serve_in_a_fresh_clone_leaves_git_status_clean() {
    let git = common::require_tool("git", "git");
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("regproxy");
    common::run_ok(
        Command::new(&git)
            .arg("clone")
            .arg("--quiet")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .arg(&clone),
        Duration::from_secs(60),
    );
    // The README's first command, from the checkout (on a free port).
    let mut server = common::Regproxy::start_wrapped_in(
        Some(&clone),
        &[] as &[&str],
        &["serve", "--listen", "127.0.0.1:0"],
    );
    let out = server.startup_stdout().join("\n");
    assert!(out.contains("created user `admin`"), "{out}");
    server.terminate(Duration::from_secs(10));
    let o = common::run_ok(
        Command::new(&git)
            .args(["status", "--porcelain", "--untracked-files=all"])
            .current_dir(&clone),
        Duration::from_secs(30),
    );
    assert_eq!(stdout(&o), "", "the first serve changed the checkout");
}

#[test]
fn a_listen_address_the_certificate_lacks_is_warned_about_with_the_command_that_adds_it() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let o = regproxy(
        dir.path(),
        &[
            "gen-cert",
            "--host",
            "registry.local",
            "--out",
            certs.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let config = common::write_config(dir.path(), "tls:\n  dir: certs\nauth:\n  enabled: false\n");
    let serve = || {
        common::Regproxy::start_with_args(&[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.2:0",
            "--data",
            dir.path().join("data").to_str().unwrap(),
        ])
    };
    let server = serve();
    let out = server.startup_stdout().join("\n");
    let fix = format!(
        "regproxy gen-cert --host 127.0.0.2 --out {}",
        certs.display()
    );
    assert!(
        out.contains("regproxy: warning: the certificate") && out.contains(&fix),
        "{out}"
    );
    drop(server);

    // The printed command adds the address and keeps registry.local.
    let args: Vec<&str> = fix.split(' ').skip(1).collect();
    let o = regproxy(dir.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let names = server_cert_names(&certs);
    assert!(
        names.dns_names.contains(&"registry.local".to_string()),
        "{names:?}"
    );
    let server = serve();
    let out = server.startup_stdout().join("\n");
    assert!(!out.contains("warning"), "{out}");
    assert!(
        out.contains(&format!("docker login 127.0.0.2:{}", server.port())),
        "{out}"
    );
}
