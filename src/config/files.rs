//! The second half of `regproxy config check`: every file a valid config
//! names is opened and parsed as `serve` would (certificate and key, and
//! that they match; the CA; the htpasswd file; the token key; the LDAP CA
//! and password files; the data directory, or the S3 credentials), changing nothing: no
//! certificate is made, no key generated, no user created.

use std::path::Path;

use super::Config;
use crate::auth::Backend;
use crate::tls::TlsMode;

/// What checking the files found: problems (the config cannot work as it
/// is) and notes (what the first start will create).
#[derive(Debug, Default)]
pub struct FileReport {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

/// Checks every file `config` names.
pub fn check_files(config: &Config) -> FileReport {
    let mut r = FileReport::default();
    match &config.s3 {
        // The bucket itself is probed by `config check` (it needs the network).
        Some(s3) => {
            if let Err(e) = s3.credentials.load() {
                r.problems.push(e);
            }
        }
        None => check_storage(&config.storage_root, &mut r),
    }
    check_tls(&config.tls, &mut r);
    if let Some(auth) = &config.auth {
        if auth.order.contains(&Backend::Htpasswd) {
            check_htpasswd(&auth.htpasswd, &mut r);
        }
        check_token_key(&auth.token_key, &mut r);
        if let Some(ldap) = &auth.ldap {
            if let Some(ca) = &ldap.ca_file {
                if let Err(e) = crate::auth::ldap::tls_config(ca) {
                    r.problems.push(e);
                }
            }
            if let Some(pw) = &ldap.bind_password_file {
                if let Err(e) = crate::auth::ldap::read_password_file(pw) {
                    r.problems.push(e);
                }
            }
        }
    }
    r
}

fn check_storage(root: &Path, r: &mut FileReport) {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => r.problems.push(format!(
            "storage.filesystem.root {} is not a directory",
            root.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => r.notes.push(format!(
            "the data directory {} will be created on first start",
            root.display()
        )),
        Err(e) => r
            .problems
            .push(format!("storage.filesystem.root {}: {e}", root.display())),
    }
}

fn check_tls(mode: &TlsMode, r: &mut FileReport) {
    match mode {
        TlsMode::Disabled => {}
        TlsMode::Files { cert, key, ca } => {
            if let Err(e) = crate::tls::load_certified_key(cert, key) {
                r.problems.push(format!("tls: {e}"));
            }
            if let Some(ca) = ca {
                if let Err(e) = crate::auth::ldap::tls_config(ca) {
                    // The same PEM check as for LDAP; name the right key.
                    r.problems.push(e.replacen("ldap.ca_file", "tls.ca", 1));
                }
            }
        }
        TlsMode::Auto { dir, .. } => {
            let cert = dir.join("server.crt");
            let key = dir.join("server.key");
            match (cert.exists(), key.exists()) {
                (true, true) => {
                    if let Err(e) = crate::tls::load_certified_key(&cert, &key) {
                        r.problems.push(format!("tls: {e}"));
                    }
                }
                (false, false) => r.notes.push(format!(
                    "no certificate in {} yet: the first start makes a CA and a server certificate there",
                    dir.display()
                )),
                (true, false) => r.problems.push(format!(
                    "tls: {} exists but its key {} is missing; restore the key or remove the certificate",
                    cert.display(),
                    key.display()
                )),
                (false, true) => r.problems.push(format!(
                    "tls: {} exists but its certificate {} is missing; restore the certificate or remove the key",
                    key.display(),
                    cert.display()
                )),
            }
        }
    }
}

fn check_htpasswd(path: &Path, r: &mut FileReport) {
    if !path.exists() {
        r.notes.push(format!(
            "the htpasswd file {} does not exist yet: the first start creates it (with the user admin when there is no LDAP)",
            path.display()
        ));
        return;
    }
    match crate::auth::htpasswd::HtpasswdFile::read(path) {
        Ok((_, line_problems)) => r.problems.extend(
            line_problems
                .into_iter()
                .map(|p| format!("{}:{}: {}", path.display(), p.line, p.message)),
        ),
        Err(e) => r.problems.push(format!("auth.htpasswd: {e}")),
    }
}

fn check_token_key(path: &Path, r: &mut FileReport) {
    let pem = match std::fs::read_to_string(path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            r.notes.push(format!(
                "the token signing key {} will be made on first start",
                path.display()
            ));
            return;
        }
        Err(e) => {
            r.problems
                .push(format!("auth.token.key {}: {e}", path.display()));
            return;
        }
    };
    if let Err(e) = rcgen::KeyPair::from_pem(&pem) {
        r.problems.push(format!(
            "auth.token.key {}: not a usable PEM private key: {e}",
            path.display()
        ));
    }
}
