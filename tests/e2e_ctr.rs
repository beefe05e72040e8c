//! containerd's `ctr`, a Go registry client, against the real binary over
//! TLS with token logins: a private containerd daemon in a temp dir pushes
//! an OCI image and pulls it back through the token flow, trusting the
//! built-in CA from a `hosts.toml`; without the CA it refuses the server.
//!
//! The access log's `version` field records the HTTP version ctr spoke
//! (containerd 1.6 sets its own TLS config, which keeps Go on HTTP/1.1; the
//! HTTP/2 Bearer flow is covered by `tests/protocol.rs`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{add_users, path_str, require_tool, run, run_ok, serve_config, write_config, Proc};

const TIMEOUT: Duration = Duration::from_secs(60);
const ALICE: (&str, &str) = ("alice", "alice-Secret-1");

/// A containerd daemon of its own (root, state and socket in `dir`).
struct Containerd {
    _proc: Proc,
    socket: String,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        let containerd = require_tool("/usr/bin/containerd", "containerd");
        let socket = dir.join("c.sock");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("log file");
        let proc = Proc::spawn(
            "containerd",
            Command::new(containerd)
                .arg("--root")
                .arg(dir.join("root"))
                .arg("--state")
                .arg(dir.join("state"))
                .arg("--address")
                .arg(&socket)
                .stdout(log.try_clone().expect("log file"))
                .stderr(log),
        );
        let c = Containerd {
            _proc: proc,
            socket: path_str(&socket).to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if run(&mut c.ctr(&["version"]), TIMEOUT).status.success() {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer within 20 s: {}",
                common::tail_file(&dir.join("containerd.log"), 40)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn ctr(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(require_tool("/usr/bin/ctr", "containerd"));
        cmd.args(["--address", &self.socket]).args(args);
        cmd
    }
}

/// `hosts/HOST/hosts.toml` for `host`, with the CA if `ca` is given.
fn hosts_dir(dir: &Path, host: &str, ca: Option<&Path>) -> String {
    let d = dir.join(host);
    std::fs::create_dir_all(&d).unwrap();
    let mut toml = format!(
        "server = \"https://{host}\"\n[host.\"https://{host}\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n"
    );
    if let Some(ca) = ca {
        std::fs::copy(ca, d.join("ca.crt")).unwrap();
        toml.push_str(&format!("  ca = \"{}\"\n", d.join("ca.crt").display()));
    }
    std::fs::write(d.join("hosts.toml"), toml).unwrap();
    path_str(dir).to_string()
}

#[test]
fn ctr_pushes_and_pulls_through_the_token_flow() {
    let dir = common::short_temp_dir("rp-ctr-");
    let d = dir.path();
    add_users(&d.join("htpasswd"), &[ALICE]);
    let config = write_config(
        d,
        &format!(
            "tls:\n  dir: {}\nauth:\n  htpasswd: {}\n",
            d.join("certs").display(),
            d.join("htpasswd").display()
        ),
    );
    let server = serve_config(&config, &d.join("data"));
    let containerd = Containerd::start(d);
    let host = server.host();
    let trusted = hosts_dir(&d.join("hosts"), &host, Some(&d.join("certs/ca.crt")));
    let untrusted = hosts_dir(&d.join("hosts-no-ca"), &host, None);
    let user = format!("{}:{}", ALICE.0, ALICE.1);

    let layout = d.join("oci");
    let image = common::write_oci_single(&layout, "local/app:1", 64 * 1024);
    let tarball = d.join("image.tar");
    run_ok(
        Command::new(require_tool("tar", "tar"))
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&tarball)
            .arg("."),
        TIMEOUT,
    );
    run_ok(
        &mut containerd.ctr(&["images", "import", path_str(&tarball)]),
        TIMEOUT,
    );
    let remote = format!("{host}/team/app:1");
    let push = |hosts: &str| {
        run(
            &mut containerd.ctr(&[
                "images",
                "push",
                "--hosts-dir",
                hosts,
                "--user",
                &user,
                &remote,
                "local/app:1",
            ]),
            TIMEOUT,
        )
    };
    let refused = push(&untrusted);
    assert!(
        !refused.status.success()
            && common::output_text(&refused).contains("certificate signed by unknown authority"),
        "without the CA ctr must refuse the server: {}",
        common::output_text(&refused)
    );
    let pushed = push(&trusted);
    assert!(
        pushed.status.success(),
        "ctr push: {}",
        common::output_text(&pushed)
    );

    run_ok(
        &mut containerd.ctr(&["images", "rm", "local/app:1"]),
        TIMEOUT,
    );
    let pulled = run(
        &mut containerd.ctr(&[
            "images",
            "pull",
            "--hosts-dir",
            &trusted,
            "--user",
            &user,
            &remote,
        ]),
        TIMEOUT,
    );
    assert!(
        pulled.status.success(),
        "ctr pull: {}",
        common::output_text(&pulled)
    );
    let listed = run_ok(&mut containerd.ctr(&["images", "ls"]), TIMEOUT);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains(&remote) && listed.contains(&image.digest),
        "the pulled image with its digest {}: {listed}",
        image.digest
    );

    // The token flow was used, and the log says which HTTP version ctr spoke.
    let logs = server.logs();
    assert!(
        logs.contains("path=/auth/token"),
        "no token request: {logs}"
    );
    let versions: std::collections::BTreeSet<&str> = logs
        .lines()
        .filter(|l| l.contains("regproxy::access"))
        .filter_map(|l| l.split(" http=").nth(1))
        .filter_map(|v| v.split(' ').next())
        .collect();
    assert!(!versions.is_empty(), "access lines carry http=: {logs}");
    eprintln!("ctr spoke: {versions:?}");
}
