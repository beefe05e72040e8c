//! Tokens against the users behind them, so a removed user, a new password
//! or a group change ends what a token can do.
//!
//! An access token of an htpasswd user must match the file now (checked on
//! every request); otherwise an access token is good for its short
//! lifetime. A refresh re-resolves its user from their backend: htpasswd
//! at once (the name and password version must match), LDAP through the
//! look-up cache (`auth.cache_secs`): the entry is read again with the
//! service account, with its groups of now, and must carry the same
//! password version. Without a service account (direct bind) the directory
//! cannot be read without the password: such refresh tokens live only
//! `auth.cache_secs`, like a cached login.

use std::sync::Arc;
use std::time::Duration;

use super::error::Why;
use super::identity::{Identity, Source};
use super::token::{Claims, TokenError, Use};
use super::{Auth, AuthError, Backend};

impl Auth {
    /// Verifies an access token, and that its htpasswd user still exists
    /// with the same password.
    /// Signature checks are cached by the token service
    /// ([`super::verified`]); the user check runs on every request.
    pub(super) fn verify_access(&self, token: &str) -> Result<Arc<Claims>, Why> {
        let claims = (self.tokens.verify_access(token))
            .map_err(|e| why_not(e, Why::BadToken, Why::ExpiredToken))?;
        if claims.src == Source::Htpasswd
            && !self.htpasswd_matches(&claims.sub, claims.pwv.as_deref())
        {
            return Err(Why::UserChanged);
        }
        Ok(claims)
    }

    /// The identity a refresh token stands for now.
    pub(super) async fn refresh(&self, token: &str) -> Result<Identity, AuthError> {
        let claims = (self.tokens.verify(token, Use::Refresh)).map_err(|e| {
            AuthError::unauthorized(why_not(e, Why::BadRefresh, Why::ExpiredRefresh))
        })?;
        if claims.src == Source::Anonymous {
            return Err(AuthError::unauthorized(Why::BadRefresh));
        }
        self.recheck(&Identity {
            user: claims.sub,
            groups: claims.groups,
            source: claims.src,
            version: claims.pwv,
        })
        .await
    }

    /// The identity of a login (a refresh token's, a UI session's) as its
    /// backend has it now: htpasswd at once (the name and password version
    /// must match), LDAP through the look-up cache. A user that is gone or
    /// changed is refused with [`Why::UserChanged`].
    pub(super) async fn recheck(&self, id: &Identity) -> Result<Identity, AuthError> {
        let changed = || AuthError::unauthorized(Why::UserChanged);
        let position = |b: Backend| self.order.iter().position(|x| *x == b);
        match id.source {
            Source::Htpasswd => {
                if position(Backend::Htpasswd).is_none()
                    || !self.htpasswd_matches(&id.user, id.version.as_deref())
                {
                    return Err(changed());
                }
                Ok(Identity {
                    user: id.user.clone(),
                    groups: Vec::new(),
                    source: Source::Htpasswd,
                    version: id.version.clone(),
                })
            }
            Source::Ldap => {
                let (Some(ldap), Some(i)) = (&self.ldap, position(Backend::Ldap)) else {
                    return Err(changed());
                };
                if self.known_before(i, &id.user) {
                    return Err(changed());
                }
                if !ldap.can_look_up() {
                    // Such a login lives only the cache TTL: its groups
                    // stand until then, as for a cached login.
                    return Ok(id.clone());
                }
                let found = match self.lookups.get(&id.user) {
                    Some(found) => found,
                    None => {
                        let found = ldap.look_up(&id.user).await.map_err(|u| {
                            tracing::warn!(reason = %u.reason, "a refresh could not be checked");
                            AuthError::Unavailable(u)
                        })?;
                        self.lookups.insert(&id.user, found.clone());
                        found
                    }
                };
                match found {
                    Some(now) if now.version == id.version => Ok(now),
                    _ => {
                        tracing::info!(user = %id.user, "refresh refused: the directory entry is gone or changed");
                        Err(changed())
                    }
                }
            }
            Source::Anonymous => Err(changed()),
        }
    }

    /// How long a refresh token for `id` may live: LDAP users the directory
    /// cannot be asked about again (no service account, or no password
    /// version on the entry) get the cache TTL only.
    pub(super) fn refresh_lifetime(&self, id: &Identity) -> Duration {
        let can_recheck = match id.source {
            Source::Ldap => {
                id.version.is_some() && self.ldap.as_ref().is_some_and(|l| l.can_look_up())
            }
            _ => true,
        };
        if can_recheck {
            self.tokens.refresh_ttl
        } else {
            self.cache_ttl.min(self.tokens.refresh_ttl)
        }
    }

    fn htpasswd_matches(&self, user: &str, version: Option<&str>) -> bool {
        let current = (self.htpasswd.as_ref())
            .and_then(|s| s.get(user))
            .map(|u| u.version);
        current.is_some() && current.as_deref() == version
    }
}

/// The client's side of a token that did not verify; the detail is logged.
fn why_not(e: TokenError, invalid: Why, expired: Why) -> Why {
    match e {
        TokenError::Expired => expired,
        e => {
            tracing::debug!(error = %e, "token refused");
            invalid
        }
    }
}
