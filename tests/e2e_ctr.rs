//! containerd's `ctr`, a Go registry client, against the real binary over
//! TLS with token logins: a private containerd daemon in a temp dir pushes
//! an OCI image and pulls it back through the token flow, trusting the
//! built-in CA from a `hosts.toml`; without the CA it refuses the server.
//!
//! The access log's `version` field records the HTTP version ctr spoke
//! (containerd 1.6 sets its own TLS config, which keeps Go on HTTP/1.1; the
//! HTTP/2 Bearer flow is covered by `tests/protocol.rs`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    add_users, hosts_dir, path_str, require_tool, run, run_ok, serve_config, write_config,
    Containerd,
};

const TIMEOUT: Duration = Duration::from_secs(60);
const ALICE: (&str, &str) = ("alice", "alice-Secret-1");

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
