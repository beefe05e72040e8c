//! Logins: checks a user name and password against the backends in their
//! configured order (through the credential cache), and checks that the
//! user behind a token is still there.

use std::net::IpAddr;
use std::sync::Arc;

use super::identity::{Credentials, Identity, Source, Verdict};
use super::token;
use super::{htpasswd, Auth, AuthError, Backend};

impl Auth {
    /// Verifies an access token, and that its user still exists with the
    /// same password (htpasswd).
    pub(super) fn verify_access(&self, token: &str) -> Result<Arc<token::Claims>, String> {
        let claims = self
            .tokens
            .verify_access(token)
            .map_err(|e| e.to_string())?;
        self.still_valid(&claims)?;
        Ok(claims)
    }

    pub(super) fn still_valid(&self, claims: &token::Claims) -> Result<(), String> {
        if claims.src == Source::Htpasswd {
            let current = self
                .htpasswd
                .as_ref()
                .and_then(|s| s.get(&claims.sub))
                .map(|u| u.version);
            if current.is_none() || current != claims.pwv {
                return Err("the user was removed or the password changed; log in again".into());
            }
        }
        Ok(())
    }

    pub(super) fn version_of(&self, user: &str) -> Option<String> {
        self.htpasswd
            .as_ref()
            .and_then(|s| s.get(user))
            .map(|u| u.version)
    }

    /// Checks a username and password: the cache first, then each backend
    /// in order. bcrypt runs on the blocking pool, LDAP is async.
    pub(super) async fn authenticate(
        &self,
        creds: &Credentials,
        peer: IpAddr,
    ) -> Result<Identity, AuthError> {
        let user = creds.user.as_str();
        self.limiter
            .check(user, peer)
            .map_err(|retry_after| AuthError::TooManyAttempts { retry_after })?;
        let rejected = || AuthError::Unauthorized {
            challenge: String::new(),
            message: "authentication required: invalid username or password".into(),
        };
        if !htpasswd::valid_user(user) || creds.password.is_empty() {
            self.limiter.failed(user, peer);
            return Err(rejected());
        }
        if let Some(id) = self
            .cache
            .check(user, &creds.password, || self.version_of(user))
        {
            return Ok(id);
        }
        let mut unavailable = None;
        let mut known_user = false;
        for backend in &self.order {
            let verdict = match backend {
                Backend::Htpasswd => {
                    let Some(stored) = self.htpasswd.as_ref().and_then(|s| s.get(user)) else {
                        continue;
                    };
                    let pw = creds.password.clone();
                    let hash = stored.hash.clone();
                    let ok =
                        tokio::task::spawn_blocking(move || htpasswd::verify_password(&pw, &hash))
                            .await
                            .unwrap_or(false);
                    if ok {
                        let id = Identity {
                            user: user.to_string(),
                            groups: Vec::new(),
                            source: Source::Htpasswd,
                        };
                        self.cache
                            .insert(&creds.password, &id, Some(stored.version));
                        Verdict::Accepted(id)
                    } else {
                        Verdict::Rejected
                    }
                }
                Backend::Ldap => {
                    let Some(ldap) = &self.ldap else { continue };
                    match ldap.authenticate(user, &creds.password).await {
                        Ok(Verdict::Accepted(id)) => {
                            self.cache.insert(&creds.password, &id, None);
                            Verdict::Accepted(id)
                        }
                        Ok(v) => v,
                        Err(u) => {
                            tracing::warn!(reason = %u.reason, "LDAP login could not be checked");
                            unavailable = Some(u);
                            continue;
                        }
                    }
                }
            };
            match verdict {
                Verdict::Accepted(id) => {
                    self.limiter.succeeded(user, peer);
                    return Ok(id);
                }
                Verdict::Rejected => {
                    known_user = true;
                    break;
                }
                Verdict::UnknownUser => continue,
            }
        }
        if let Some(u) = unavailable {
            return Err(AuthError::Unavailable(u));
        }
        self.limiter.failed(user, peer);
        // An unknown "user name" is often a password typed in the wrong
        // field: only names of real users are logged.
        if known_user {
            tracing::info!(%peer, user, "failed login: wrong password");
        } else {
            tracing::info!(%peer, "failed login: unknown user");
        }
        Err(rejected())
    }
}
