//! Authentication and authorization: turns a routed request into an
//! [`Authorized`] value, the proof the registry requires to answer it.
//!
//! Only this module can make an `Authorized`, so no registry endpoint can be
//! reached without passing through [`Authorizer::authorize`]. Logins come
//! from htpasswd and LDAP, in a configured order; Docker clients get tokens
//! from the token service ([`endpoint`]); password checks are cached and
//! never run on the reactor.

pub mod acl;
mod basic;
mod browser;
pub mod cache;
mod challenge;
mod endpoint;
mod error;
pub mod htpasswd;
pub mod identity;
pub mod ldap;
mod login;
mod revalidate;
pub mod secret;
pub mod session;
mod settings;
pub mod token;
mod verified;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, Response};

use crate::metrics::{self, AuthBackend, AuthOutcome};
use crate::oci::names::RepoName;
use crate::oci::response::{self, Body};
use crate::oci::{Action, OciError, Route};
use acl::{Policy, Subject};
use basic::{basic_credentials, strip_scheme};
use cache::{CredentialCache, FailureLimiter, LookupCache};
use error::Why;
use htpasswd::HtpasswdStore;
use identity::Source;
use ldap::LdapBackend;
use login::DummyHashes;
use session::SessionStore;
use std::sync::RwLock;
use token::{ResourceActions, TokenService};

pub use endpoint::TOKEN_PATH;
pub use error::AuthError;
pub use settings::{bootstrap_admin, AuthSettings, Backend, Challenge, SetupError};

/// A request that passed authorization: the route, the action it needs,
/// who asked, and the policy that decides what else they may touch (mount
/// sources, catalog entries).
#[derive(Debug)]
pub struct Authorized {
    route: Route,
    action: Option<Action>,
    subject: Subject,
    policy: Arc<Policy>,
    /// The token's `access` list, for token requests.
    token: Option<Vec<ResourceActions>>,
}

impl Authorized {
    pub fn route(&self) -> &Route {
        &self.route
    }

    pub fn action(&self) -> Option<Action> {
        self.action
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&str> {
        self.subject.user.as_deref()
    }

    /// Whether a cross-repository mount may read from `repo`: the rules
    /// allow pull there, and a token (if any) grants it.
    pub fn may_mount_from(&self, repo: &RepoName) -> bool {
        self.policy
            .decide(&self.subject, repo, Action::Pull)
            .allowed
            && self
                .token
                .as_ref()
                .is_none_or(|access| access.iter().any(|a| a.allows(repo, Action::Pull)))
    }

    /// Whether the caller may do everything (an admin): garbage collection.
    pub fn is_admin(&self) -> bool {
        self.token.is_none() && self.policy.is_admin(&self.subject)
    }

    /// Whether `repo` may appear in this caller's catalog.
    pub fn may_list(&self, repo: &RepoName) -> bool {
        self.policy
            .decide(&self.subject, repo, Action::Pull)
            .allowed
    }
}

/// The facts about a request that authorization needs.
pub struct RequestInfo<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub peer: IpAddr,
    /// `https://host:port` as the client reached us, for the token realm.
    pub origin: &'a str,
    /// The query string (a mount's `from=` joins the challenge's scope).
    pub query: Option<&'a str>,
}

/// Decides what a request may do.
#[derive(Clone)]
pub struct Authorizer {
    auth: Option<Arc<Auth>>,
    /// Swapped whole on reload: a request sees the old rules or the new.
    policy: Arc<RwLock<Arc<Policy>>>,
    /// The web UI's signed-in browsers.
    sessions: Arc<SessionStore>,
}

/// The state behind enabled authentication.
struct Auth {
    htpasswd: Option<HtpasswdStore>,
    ldap: Option<LdapBackend>,
    order: Vec<Backend>,
    tokens: TokenService,
    cache: CredentialCache,
    /// Users looked up without a password (refresh tokens).
    lookups: LookupCache,
    cache_ttl: Duration,
    limiter: FailureLimiter,
    /// What unknown users' passwords are checked against.
    dummy: DummyHashes,
    challenge: Challenge,
    realm: Option<String>,
}

impl Authorizer {
    /// Everything allowed to everyone (`--no-auth`).
    pub fn open() -> Authorizer {
        Authorizer {
            auth: None,
            policy: Arc::new(RwLock::new(Arc::new(Policy::open()))),
            sessions: Arc::default(),
        }
    }

    /// The rules in force now.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the rules atomically, and forgets verified tokens.
    pub fn set_policy(&self, policy: Policy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policy);
        if let Some(auth) = &self.auth {
            auth.tokens.forget_verified();
        }
    }

    pub fn new(s: &AuthSettings, policy: Policy) -> Result<Authorizer, SetupError> {
        let htpasswd = if s.order.contains(&Backend::Htpasswd) {
            Some(HtpasswdStore::open(&s.htpasswd)?)
        } else {
            None
        };
        let ldap = match (&s.ldap, s.order.contains(&Backend::Ldap)) {
            (Some(cfg), true) => Some(LdapBackend::new(cfg.clone()).map_err(SetupError::Ldap)?),
            _ => None,
        };
        let tokens = TokenService::open(
            &s.token_key,
            &s.issuer,
            &s.service,
            s.token_ttl,
            s.refresh_ttl,
        )?;
        let auth = Arc::new(Auth {
            htpasswd,
            ldap,
            order: s.order.clone(),
            tokens,
            cache: CredentialCache::new(s.cache_ttl),
            lookups: LookupCache::new(s.cache_ttl),
            cache_ttl: s.cache_ttl,
            limiter: FailureLimiter::new(s.failure_limits.0, s.failure_limits.1),
            dummy: DummyHashes::default(),
            challenge: s.challenge,
            realm: s.realm.clone(),
        });
        // The hash unknown users are checked against, made now on the
        // blocking pool rather than on the first failed login.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let auth = auth.clone();
            runtime.spawn(async move { auth.dummy.get(auth.dummy_cost()).await });
        }
        Ok(Authorizer {
            auth: Some(auth),
            policy: Arc::new(RwLock::new(Arc::new(policy))),
            sessions: Arc::default(),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.auth.is_some()
    }

    /// Whether the LDAP directory answers (`None` when LDAP is not
    /// configured), for `/readyz`.
    pub async fn ldap_probe(&self) -> Option<Result<(), String>> {
        let ldap = self.auth.as_ref()?.ldap.as_ref()?;
        Some(ldap.probe().await.map_err(|u| u.reason))
    }

    /// Re-reads the htpasswd file if it changed (or always, when `force`d
    /// by SIGHUP).
    pub fn reload(&self, force: bool) {
        if let Some(store) = self.auth.as_ref().and_then(|a| a.htpasswd.as_ref()) {
            match store.reload(force) {
                Ok(true) => {
                    if let Some(auth) = &self.auth {
                        auth.tokens.forget_verified();
                    }
                    tracing::info!(file = %store.path().display(), "reloaded users");
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "keeping the previous users"),
            }
        }
    }

    /// Checks a request against its route: who is asking (token, Basic
    /// login, or nobody), then the rules, on every request.
    pub async fn authorize(
        &self,
        route: Route,
        info: &RequestInfo<'_>,
    ) -> Result<Authorized, AuthError> {
        let action = route.action(info.method).map_err(AuthError::Route)?;
        let policy = self.policy();
        let Some(auth) = &self.auth else {
            return Ok(Authorized {
                route,
                action,
                subject: Subject::anonymous(),
                policy,
                token: None,
            });
        };
        let value = info
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (subject, token) = if let Some(raw) = strip_scheme(value, "bearer") {
            let claims = auth.verify_access(raw).map_err(|why| {
                metrics::get().auth(AuthBackend::Token, AuthOutcome::Failure);
                tracing::info!(
                    target: "regproxy::audit",
                    event = "login_failed",
                    peer = %info.peer,
                    backend = "token",
                    reason = ?why,
                    "failed login: token refused"
                );
                AuthError::Unauthorized {
                    challenge: auth.challenge_for(&route, action, info, Some("invalid_token")),
                    why,
                }
            })?;
            metrics::get().auth(AuthBackend::Token, AuthOutcome::Success);
            (subject_of(&policy, &claims), Some(claims.access.clone()))
        } else if let Some(creds) = basic_credentials(value) {
            let identity = auth
                .authenticate(&creds, info.peer)
                .await
                .map_err(|e| e.challenged(auth.challenge_for(&route, action, info, None)))?;
            let mut groups = identity.groups;
            groups.extend(policy.groups_of(&identity.user));
            (
                Subject {
                    user: Some(identity.user),
                    groups,
                },
                None,
            )
        } else {
            (Subject::anonymous(), None)
        };
        let anonymous = subject.user.is_none();
        // A header that is neither Basic nor Bearer counts as none, but
        // the answer says what was wrong with it.
        let login = || AuthError::Unauthorized {
            challenge: auth.challenge_for(&route, action, info, None),
            why: match value.trim() {
                "" => Why::NoCredentials,
                _ => Why::Malformed,
            },
        };
        // `/v2/` and the catalog need a login or a token; the catalog is
        // then filtered by the rules.
        let (allowed, scoped) = match (&route, action) {
            (Route::Base, _) | (Route::Catalog, _) if anonymous && token.is_none() => {
                return Err(login())
            }
            (Route::Base, _) | (_, None) => (true, true),
            (Route::Catalog, _) => (
                true,
                token.as_ref().is_none_or(|t| {
                    t.iter()
                        .any(|a| a.kind == "registry" && a.name == "catalog")
                }),
            ),
            (r, Some(act)) => {
                let repo = r.repo().ok_or_else(login)?;
                (
                    policy.decide(&subject, repo, act).allowed,
                    token
                        .as_ref()
                        .is_none_or(|t| t.iter().any(|a| a.allows(repo, act))),
                )
            }
        };
        if !allowed {
            if anonymous {
                return Err(login());
            }
            tracing::info!(
                target: "regproxy::audit",
                event = "denied",
                peer = %info.peer,
                user = subject.user.as_deref().unwrap_or(""),
                repository = route.repo().map(|r| r.as_str()).unwrap_or(""),
                action = action.map(Action::as_str).unwrap_or(""),
                "request denied by the access rules"
            );
            // Answer as for a missing repository where a listing would
            // otherwise reveal that it exists.
            return Err(match route {
                Route::Tags(_) | Route::Referrers(..) => AuthError::Route(OciError::NameUnknown),
                ref r => AuthError::Denied {
                    repo: r.repo().map(|n| n.to_string()).unwrap_or_default(),
                    action: action.map(Action::as_str).unwrap_or("pull"),
                    user: subject.user.unwrap_or_default(),
                },
            });
        }
        if !scoped {
            return Err(AuthError::Unauthorized {
                challenge: auth.challenge_for(&route, action, info, Some("insufficient_scope")),
                why: Why::Scope,
            });
        }
        Ok(Authorized {
            route,
            action,
            subject,
            policy,
            token,
        })
    }

    /// Answers `GET`/`POST /auth/token`; also returns the user name the
    /// access log may show (see [`endpoint::handle`]).
    pub async fn token_endpoint(
        &self,
        parts: &http::request::Parts,
        body: Option<bytes::Bytes>,
        peer: IpAddr,
    ) -> (Response<Body>, Option<String>) {
        match &self.auth {
            Some(auth) => endpoint::handle(auth, &self.policy(), parts, body, peer).await,
            None => (response::error(&OciError::NotFound), None),
        }
    }
}

/// The subject a token stands for: its user, the groups the directory gave
/// them at login, and the groups `groups:` gives them now.
fn subject_of(policy: &Policy, claims: &token::Claims) -> Subject {
    if claims.src == Source::Anonymous {
        return Subject::anonymous();
    }
    let mut groups = claims.groups.clone();
    groups.extend(policy.groups_of(&claims.sub));
    Subject {
        user: Some(claims.sub.clone()),
        groups,
    }
}
