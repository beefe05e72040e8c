//! Who a request comes from, once authenticated, and what a backend said
//! about a login.

use super::secret::Secret;

/// Where a user was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Htpasswd,
    Ldap,
    /// No login: tokens for anonymous pulls.
    Anonymous,
}

/// An authenticated user: the backend's own spelling of the name (the one
/// name rules, tokens and logs see), the groups of that name, and a
/// version of the password, so tokens end when it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    pub source: Source,
    /// htpasswd: a fingerprint of the hash; LDAP: of the entry's change
    /// stamps (`None` if the directory shows none).
    pub version: Option<String>,
}

/// A backend's answer to "is this the password of this user?".
#[derive(Debug)]
pub enum Verdict {
    /// The password is right.
    Accepted(Identity),
    /// The user exists here and the password is wrong.
    Rejected,
    /// This backend does not know the user: ask the next one.
    UnknownUser,
}

/// A backend could not answer (directory down, slow, misconfigured). Not
/// the user's fault: never reported as a wrong password.
#[derive(Debug, thiserror::Error)]
#[error("authentication service unavailable: {reason}")]
pub struct Unavailable {
    pub reason: String,
}

/// Username and password from a `Basic` header or a token request.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}
