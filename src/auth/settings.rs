//! Authentication settings (validated from the `auth:` section), the
//! errors of setting it up, and the first start's `admin` user.

use std::path::PathBuf;
use std::time::Duration;

use super::htpasswd;
use super::ldap::LdapConfig;
use super::secret::Secret;
use super::token;

/// A login backend, in the order they are asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Htpasswd,
    Ldap,
}

/// How clients are asked to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Challenge {
    /// Docker token authentication (`WWW-Authenticate: Bearer realm=...`).
    Token,
    /// Plain HTTP Basic on every request (simple clients, curl).
    Basic,
}

/// Validated authentication settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub htpasswd: PathBuf,
    pub ldap: Option<LdapConfig>,
    pub order: Vec<Backend>,
    pub challenge: Challenge,
    pub service: String,
    pub issuer: String,
    pub token_ttl: Duration,
    pub refresh_ttl: Duration,
    pub token_key: PathBuf,
    pub realm: Option<String>,
    pub cache_ttl: Duration,
    /// Failed logins per user+address, and per address, before a pause.
    pub failure_limits: (u32, u32),
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Htpasswd(#[from] htpasswd::HtpasswdError),
    #[error(transparent)]
    Token(#[from] token::TokenError),
    #[error("LDAP: {0}")]
    Ldap(String),
}

/// On a first start with no users anywhere (htpasswd empty or missing, no
/// LDAP), creates `admin` with a random password and returns it, to be shown
/// once.
pub fn bootstrap_admin(s: &AuthSettings) -> Result<Option<Secret>, SetupError> {
    if !s.order.contains(&Backend::Htpasswd) || s.ldap.is_some() {
        return Ok(None);
    }
    let (file, _) = htpasswd::HtpasswdFile::read(&s.htpasswd)?;
    if !file.users().is_empty() {
        return Ok(None);
    }
    use rand::distr::{Alphanumeric, SampleString};
    let password = Secret::new(Alphanumeric.sample_string(&mut rand::rng(), 24));
    let hash = htpasswd::hash_password(&password, htpasswd::DEFAULT_COST)?;
    let created = htpasswd::edit(&s.htpasswd, |f| {
        if f.users().is_empty() {
            f.set("admin", hash);
            true
        } else {
            false
        }
    })?;
    Ok(created.then_some(password))
}
