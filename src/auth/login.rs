//! Password logins: one identity per person, failing closed.
//!
//! The backends are asked in the configured order, through the credential
//! cache. The first backend that knows the name decides: an accepted login
//! is that backend's identity (its own spelling of the name); a wrong
//! password ends the login; only "no such user" passes the name on. A name
//! an earlier backend knows under any spelling the later one would accept
//! (htpasswd's `alice` for LDAP's case-insensitive `ALICE`) is never
//! accepted by the later one. A backend that cannot answer stops the login
//! ([`Unavailable`], 503). A failure costs one bcrypt check whether the
//! user exists or not, and counts the same in the failure limiter, so
//! timing does not tell which names exist.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::error::Why;
use super::identity::{Credentials, Identity, Source, Unavailable, Verdict};
use super::secret::Secret;
use super::{htpasswd, Auth, AuthError, Backend};
use crate::metrics::{self, AuthBackend, AuthOutcome};

/// One bcrypt hash of a random password per cost, made once on the
/// blocking pool: what the password of an unknown user is checked against.
#[derive(Default)]
pub(super) struct DummyHashes(Mutex<HashMap<u32, Arc<str>>>);

impl DummyHashes {
    pub(super) async fn get(&self, cost: u32) -> Option<Arc<str>> {
        let known = (self.0.lock().unwrap_or_else(|p| p.into_inner()))
            .get(&cost)
            .cloned();
        if known.is_some() {
            return known;
        }
        let made = tokio::task::spawn_blocking(move || {
            let password = Secret::new(uuid::Uuid::new_v4().to_string());
            htpasswd::hash_password(&password, cost).ok()
        });
        let hash: Arc<str> = made.await.ok().flatten()?.into();
        let mut known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Some(known.entry(cost).or_insert(hash).clone())
    }
}

/// How the chain of backends ended, when every backend it asked answered.
enum Outcome {
    Accepted(Identity),
    /// `known`: a backend knew the name (wrong password, or a spelling of
    /// another backend's user).
    Refused {
        known: bool,
    },
}

impl Auth {
    /// Checks a user name and password: the cache first, then the backends
    /// in order. bcrypt runs on the blocking pool, LDAP is async.
    pub(super) async fn authenticate(
        &self,
        creds: &Credentials,
        peer: IpAddr,
    ) -> Result<Identity, AuthError> {
        let user = creds.user.as_str();
        // Failures count per person, not per spelling of the name.
        let key = user.to_lowercase();
        self.limiter
            .check(&key, peer)
            .map_err(|retry_after| AuthError::TooManyAttempts { retry_after })?;
        if !htpasswd::valid_user(user) || creds.password.is_empty() {
            self.limiter.failed(&key, peer);
            tracing::info!(
                target: "regproxy::audit",
                event = "login_failed",
                %peer,
                "failed login: unusable user name or empty password"
            );
            return Err(AuthError::unauthorized(Why::BadLogin));
        }
        let cached = self
            .cache
            .check(user, &creds.password, |id| self.current_version(id));
        metrics::get().credential_cache(cached.is_some());
        if let Some(id) = cached {
            return Ok(id);
        }
        let mut hashed = false;
        let outcome = match self.ask_backends(creds, &mut hashed).await {
            Ok(outcome) => outcome,
            Err(u) => {
                tracing::warn!(reason = %u.reason, "a login could not be checked");
                return Err(AuthError::Unavailable(u));
            }
        };
        match outcome {
            Outcome::Accepted(id) => {
                self.limiter.succeeded(&key, peer);
                let version = id.version.clone().filter(|_| id.source == Source::Htpasswd);
                self.cache.insert(user, &creds.password, &id, version);
                Ok(id)
            }
            Outcome::Refused { known } => {
                if !hashed {
                    self.dummy_check(&creds.password).await;
                }
                self.limiter.failed(&key, peer);
                // An unknown "user name" is often a password typed in the
                // wrong field: only names of real users are logged.
                if known {
                    tracing::info!(target: "regproxy::audit", event = "login_failed", %peer, user, "failed login: wrong password");
                    Err(AuthError::unauthorized(Why::WrongPassword))
                } else {
                    tracing::info!(target: "regproxy::audit", event = "login_failed", %peer, "failed login: unknown user");
                    Err(AuthError::unauthorized(Why::BadLogin))
                }
            }
        }
    }

    /// Asks each backend in order until one knows the name. `hashed` tells
    /// whether a bcrypt check ran.
    async fn ask_backends(
        &self,
        creds: &Credentials,
        hashed: &mut bool,
    ) -> Result<Outcome, Unavailable> {
        let user = creds.user.as_str();
        for (i, backend) in self.order.iter().enumerate() {
            match backend {
                Backend::Htpasswd => {
                    let Some(store) = &self.htpasswd else {
                        continue;
                    };
                    let Some(stored) = store.get(user) else {
                        // `ALICE` when the file has `alice`: a later LDAP
                        // would take it for its alice. htpasswd decides,
                        // and names are exact there.
                        if self.ldap_after(i) && store.knows_any_case(user) {
                            metrics::get().auth(AuthBackend::Htpasswd, AuthOutcome::Failure);
                            return Ok(Outcome::Refused { known: true });
                        }
                        continue;
                    };
                    *hashed = true;
                    let (password, hash) = (creds.password.clone(), stored.hash.clone());
                    let ok = tokio::task::spawn_blocking(move || {
                        htpasswd::verify_password(&password, &hash)
                    })
                    .await
                    .unwrap_or(false);
                    let outcome = if ok {
                        AuthOutcome::Success
                    } else {
                        AuthOutcome::Failure
                    };
                    metrics::get().auth(AuthBackend::Htpasswd, outcome);
                    return Ok(match ok {
                        true => Outcome::Accepted(Identity {
                            user: user.to_string(),
                            groups: Vec::new(),
                            source: Source::Htpasswd,
                            version: Some(stored.version),
                        }),
                        false => Outcome::Refused { known: true },
                    });
                }
                Backend::Ldap => {
                    let Some(ldap) = &self.ldap else {
                        continue;
                    };
                    let verdict =
                        ldap.authenticate(user, &creds.password)
                            .await
                            .inspect_err(|_| {
                                metrics::get().auth(AuthBackend::Ldap, AuthOutcome::Unavailable)
                            })?;
                    let outcome = match &verdict {
                        Verdict::Accepted(id) if !self.known_before(i, &id.user) => {
                            AuthOutcome::Success
                        }
                        _ => AuthOutcome::Failure,
                    };
                    metrics::get().auth(AuthBackend::Ldap, outcome);
                    match verdict {
                        Verdict::Accepted(id) if self.known_before(i, &id.user) => {
                            tracing::info!(user = %id.user, "LDAP login refused: an earlier backend has this user");
                            return Ok(Outcome::Refused { known: true });
                        }
                        Verdict::Accepted(id) => return Ok(Outcome::Accepted(id)),
                        Verdict::Rejected => return Ok(Outcome::Refused { known: true }),
                        Verdict::UnknownUser => continue,
                    }
                }
            }
        }
        Ok(Outcome::Refused { known: false })
    }

    /// Whether a backend before position `i` of the order has `user` under
    /// any spelling that differs only in case.
    pub(super) fn known_before(&self, i: usize, user: &str) -> bool {
        self.order[..i.min(self.order.len())]
            .iter()
            .any(|b| match b {
                Backend::Htpasswd => {
                    (self.htpasswd.as_ref()).is_some_and(|s| s.knows_any_case(user))
                }
                Backend::Ldap => false,
            })
    }

    fn ldap_after(&self, i: usize) -> bool {
        self.ldap.is_some() && self.order[i + 1..].contains(&Backend::Ldap)
    }

    /// The password version of an htpasswd identity now (`None`: removed).
    pub(super) fn current_version(&self, id: &Identity) -> Option<String> {
        match id.source {
            Source::Htpasswd => self.htpasswd.as_ref()?.get(&id.user).map(|u| u.version),
            _ => None,
        }
    }

    /// The bcrypt check a known user's wrong password costs, for a user
    /// no backend knows (or one whose backend checks no hash itself).
    async fn dummy_check(&self, password: &Secret) {
        let Some(hash) = self.dummy.get(self.dummy_cost()).await else {
            return;
        };
        let password = password.clone();
        let _ =
            tokio::task::spawn_blocking(move || htpasswd::verify_password(&password, &hash)).await;
    }

    /// The cost of the users' hashes in the htpasswd file.
    pub(super) fn dummy_cost(&self) -> u32 {
        (self.htpasswd.as_ref()).map_or(htpasswd::DEFAULT_COST, |s| s.typical_cost())
    }
}
