//! The `auth:` section: defaults (htpasswd users, Docker tokens) and the
//! validated [`AuthSettings`], with a problem per bad key.

use std::path::{Path, PathBuf};

use super::problems::{find_key_line, Problem};
use super::raw::RawAuth;
use crate::auth::{AuthSettings, Backend, Challenge};

/// Authentication on, htpasswd users from `./htpasswd`, Docker tokens.
pub(super) fn default_auth(base: &Path) -> AuthSettings {
    AuthSettings {
        htpasswd: base.join("htpasswd"),
        ldap: None,
        order: vec![Backend::Htpasswd],
        challenge: Challenge::Token,
        service: "regproxy".into(),
        issuer: "regproxy".into(),
        token_ttl: std::time::Duration::from_secs(300),
        refresh_ttl: std::time::Duration::from_secs(30 * 24 * 3600),
        token_key: base.join("certs").join("token.key"),
        realm: None,
        cache_ttl: std::time::Duration::from_secs(300),
        failure_limits: (
            crate::auth::cache::USER_LIMIT,
            crate::auth::cache::ADDR_LIMIT,
        ),
    }
}

pub(super) fn parse_auth(
    raw: RawAuth,
    text: &str,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> Option<AuthSettings> {
    if raw.enabled == Some(false) {
        return None;
    }
    let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let mut a = default_auth(base);
    if let Some(c) = raw.challenge {
        a.challenge = c;
    }
    if let Some(p) = raw.htpasswd {
        a.htpasswd = abs(p);
    }
    if let Some(mut ldap) = raw.ldap {
        ldap.ca_file = ldap.ca_file.map(abs);
        ldap.bind_password_file = ldap.bind_password_file.map(abs);
        for message in ldap.validate() {
            problems.push(Problem {
                line: find_key_line(text, "ldap"),
                message: format!("auth.ldap: {message}"),
            });
        }
        a.order = vec![Backend::Htpasswd, Backend::Ldap];
        a.ldap = Some(ldap);
    }
    if let Some(order) = raw.order {
        if order.is_empty() {
            problems.push(Problem {
                line: find_key_line(text, "order"),
                message: "auth.order is empty: list htpasswd and/or ldap".into(),
            });
        }
        if order.contains(&Backend::Ldap) && a.ldap.is_none() {
            problems.push(Problem {
                line: find_key_line(text, "order"),
                message: "auth.order names ldap, but there is no auth.ldap section".into(),
            });
        }
        a.order = order;
    }
    if let Some(secs) = raw.cache_secs {
        a.cache_ttl = std::time::Duration::from_secs(secs);
    }
    if let Some(f) = raw.failed_logins {
        for (key, value) in [("per_user", f.per_user), ("per_address", f.per_address)] {
            if value == Some(0) {
                problems.push(Problem {
                    line: find_key_line(text, key),
                    message: format!("auth.failed_logins.{key} must be at least 1"),
                });
            }
        }
        a.failure_limits = (
            f.per_user.unwrap_or(a.failure_limits.0),
            f.per_address.unwrap_or(a.failure_limits.1),
        );
    }
    if let Some(t) = raw.token {
        if let Some(s) = t.service {
            a.service = s;
        }
        if let Some(i) = t.issuer {
            a.issuer = i;
        }
        if let Some(e) = t.expiry_secs {
            if e < crate::auth::token::MIN_TOKEN_SECS {
                problems.push(Problem {
                    line: find_key_line(text, "expiry_secs"),
                    message: format!(
                        "auth.token.expiry_secs must be at least {}: Docker and podman treat every token as valid that long",
                        crate::auth::token::MIN_TOKEN_SECS
                    ),
                });
            }
            a.token_ttl = std::time::Duration::from_secs(e);
        }
        if let Some(e) = t.refresh_expiry_secs {
            a.refresh_ttl = std::time::Duration::from_secs(e);
        }
        if let Some(k) = t.key {
            a.token_key = abs(k);
        }
        if let Some(r) = t.realm {
            if !(r.starts_with("https://") || r.starts_with("http://")) {
                problems.push(Problem {
                    line: find_key_line(text, "realm"),
                    message: "auth.token.realm must be an absolute URL such as https://registry.example.com/auth/token".into(),
                });
            }
            a.realm = Some(r);
        }
    }
    Some(a)
}
