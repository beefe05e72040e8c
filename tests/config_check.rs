//! `regproxy config check` opens every file a config names, as `serve`
//! would, and lists every problem at once (exit 64): certificate and key
//! unreadable or not matching, a broken CA file, an htpasswd file that is a
//! directory or has bad lines, a token key that is not a key, the LDAP CA
//! and password files, a data directory that is a file. A config whose
//! files are all fine, or not made yet (first start), passes.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

fn check(config: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regproxy"));
    cmd.args(["config", "check", "--config", path_str(config)]);
    run(&mut cmd, Duration::from_secs(30))
}

/// A self-signed EC certificate and its key, made by openssl.
fn openssl_pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let openssl = require_tool("openssl", "openssl");
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let mut cmd = Command::new(openssl);
    cmd.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=registry.local",
        "-keyout",
    ])
    .arg(&key)
    .arg("-out")
    .arg(&crt);
    run_ok(&mut cmd, Duration::from_secs(30));
    (crt, key)
}

#[test]
fn every_file_problem_is_listed_and_exits_64() {
    let dir = temp_dir("regproxy-check-");
    let d = dir.path();
    let (crt_a, _) = openssl_pair(d, "a");
    let (_, key_b) = openssl_pair(d, "b");
    std::fs::create_dir(d.join("htpasswd-dir")).unwrap();
    std::fs::write(
        d.join("token.key"),
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::write(d.join("ldap-password"), "  \n").unwrap();
    std::fs::write(d.join("ca.pem"), "no certificate here\n").unwrap();
    std::fs::write(d.join("data"), "a file, not a directory").unwrap();
    let config = write_config(
        d,
        &format!(
            "storage:\n  filesystem:\n    root: {d}/data\n\
             tls:\n  cert: {crt}\n  key: {key}\n  ca: {d}/ca.pem\n\
             auth:\n  htpasswd: {d}/htpasswd-dir\n  order: [htpasswd, ldap]\n  token:\n    key: {d}/token.key\n\
             \x20 ldap:\n    url: ldaps://127.0.0.1:1\n    ca_file: {d}/missing-ca.pem\n    bind_dn: cn=svc,dc=example,dc=org\n    bind_password_file: {d}/ldap-password\n    user_base: dc=example,dc=org\n",
            d = d.display(),
            crt = crt_a.display(),
            key = key_b.display(),
        ),
    );
    let o = check(&config);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64), "{}", output_text(&o));
    assert!(
        err.starts_with("regproxy: error: ") && err.contains("\nhint: "),
        "{err}"
    );
    for needle in [
        "7 problem(s)",
        "is not a directory",      // data
        "a.crt",                   // the key does not match the certificate
        "tls.ca",                  // no certificate in the CA file
        "htpasswd-dir",            // a directory
        "auth.token.key",          // not a key
        "missing-ca.pem",          // unreadable
        "ldap.bind_password_file", // empty
    ] {
        assert!(err.contains(needle), "{needle} missing in:\n{err}");
    }
    assert!(
        err.contains("does not belong to the certificate")
            && err.contains("auth.htpasswd: cannot read"),
        "{err}"
    );

    // The same files, fixed: a matching pair, no CA, an htpasswd file with
    // a bad line (still a problem), the rest not there yet (notes).
    let (crt, key) = openssl_pair(d, "c");
    std::fs::remove_file(d.join("data")).unwrap();
    std::fs::write(d.join("htpasswd"), "alice:not-a-hash\n").unwrap();
    let config = write_config(
        d,
        &format!(
            "storage:\n  filesystem:\n    root: {d}/data\ntls:\n  cert: {crt}\n  key: {key}\n\
             auth:\n  htpasswd: {d}/htpasswd\n  token:\n    key: {d}/new-token.key\n",
            d = d.display(),
            crt = crt.display(),
            key = key.display(),
        ),
    );
    let o = check(&config);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64), "{}", output_text(&o));
    assert!(
        err.contains("1 problem(s)") && err.contains("htpasswd:1:"),
        "{err}"
    );
    std::fs::write(d.join("htpasswd"), "").unwrap();
    add_users(&d.join("htpasswd"), &[("alice", "alice-pw-1")]);
    let o = check(&config);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert!(
        out.contains(": OK")
            && out.contains("note: the data directory")
            && out.contains("note: the token signing key"),
        "{out}"
    );
    assert!(out.contains("admin: http://127.0.0.1:5001"), "{out}");
    assert!(
        !d.join("data").exists() && !d.join("new-token.key").exists(),
        "config check changed nothing"
    );
}

/// An S3 endpoint with a user name and password in it
/// (`http://user:pass@host`) is refused with a hint naming where the key
/// goes, and the password is printed nowhere.
#[test]
fn an_s3_endpoint_with_a_password_in_it_is_refused_without_printing_it() {
    let dir = temp_dir("check-s3-userinfo-");
    let creds = dir.path().join("s3.env");
    std::fs::write(&creds, "AWS_ACCESS_KEY_ID=GKx\nAWS_SECRET_ACCESS_KEY=y\n").unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "tls:\n  enabled: false\nstorage:\n  s3:\n    endpoint: http://admin:sekrit-pw@127.0.0.1:{}\n    \
             region: garage\n    bucket: registry\n    credentials_file: {}\n",
            free_port(),
            creds.display()
        ),
    );
    let out = check(&config);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(64), "{text}");
    assert!(
        !text.contains("sekrit-pw"),
        "the password was printed:\n{text}"
    );
    assert!(
        text.contains("user name or password") && text.contains("credentials_file"),
        "{text}"
    );
}
