//! The command line as a user meets it: `config check`, `gen-cert`, and the
//! startup failures of `serve`. Every failure exits non-zero with
//! `regproxy: error: ...` and a `hint: ...`, never a panic.

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
    assert!(
        out.contains(&fp.hex()),
        "the download check compares sha256sum output: {out}"
    );
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
