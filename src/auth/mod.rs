//! Authentication and authorization: turns a routed request into an
//! [`Authorized`] value, the proof the registry requires to answer it.
//!
//! Only this module can make an `Authorized`, so no registry endpoint can be
//! reached without passing through [`Authorizer::authorize`]. Logins come
//! from htpasswd and LDAP, in a configured order; Docker clients get tokens
//! from the token service ([`endpoint`]); password checks are cached and
//! never run on the reactor.

pub mod acl;
pub mod cache;
mod endpoint;
pub mod htpasswd;
pub mod identity;
pub mod ldap;
pub mod secret;
pub mod token;
mod verified;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::{HeaderMap, Method, Response, StatusCode};

use crate::oci::names::RepoName;
use crate::oci::response::{self, header, Body};
use crate::oci::{Action, OciError, Route};
use acl::{Policy, Subject};
use cache::{CredentialCache, FailureLimiter};
use htpasswd::HtpasswdStore;
use identity::{Credentials, Identity, Source, Unavailable, Verdict};
use ldap::{LdapBackend, LdapConfig};
use secret::Secret;
use std::sync::RwLock;
use token::{ResourceActions, TokenService};

pub use endpoint::TOKEN_PATH;

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

/// Why a request is not allowed (yet).
#[derive(Debug)]
pub enum AuthError {
    /// Not a valid request for this route (e.g. 405).
    Route(OciError),
    /// 401: log in (again).
    Unauthorized { challenge: String, message: String },
    /// 403: logged in, but not allowed to do `action` on `repo`.
    Denied { repo: String, action: &'static str },
    /// 429: too many failed logins; try again later.
    TooManyAttempts { retry_after: Duration },
    /// 503: a login backend is down.
    Unavailable(Unavailable),
    /// 400: a token request with a `grant_type` we do not serve.
    UnsupportedGrant,
}

impl AuthError {
    /// The one place an auth error becomes an HTTP answer.
    pub fn into_response(self) -> Response<Body> {
        let (status, code, message) = match &self {
            AuthError::Route(e) => return response::error(e),
            AuthError::Unauthorized { message, .. } => {
                (StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message.clone())
            }
            AuthError::Denied { .. } => (
                StatusCode::FORBIDDEN,
                "DENIED",
                "requested access to the resource is denied".to_string(),
            ),
            AuthError::TooManyAttempts { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                format!(
                    "too many failed logins; try again in {} s",
                    retry_after.as_secs().max(1)
                ),
            ),
            AuthError::UnsupportedGrant => (
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                "unsupported_grant_type: grant_type must be `password` or `refresh_token`"
                    .to_string(),
            ),
            AuthError::Unavailable(u) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!("{u}; try again later, or ask the registry's operator"),
            ),
        };
        let mut error = serde_json::json!({ "code": code, "message": message });
        // Docker retries a DENIED error that carries only the default message
        // and no detail, as if it were transient; the access record (as
        // Distribution sends it) makes it final.
        if let AuthError::Denied { repo, action } = &self {
            error["detail"] =
                serde_json::json!([{ "Type": "repository", "Name": repo, "Action": action }]);
        }
        let mut body = serde_json::json!({ "errors": [error] });
        if let AuthError::UnsupportedGrant = self {
            // The OAuth2 form of the same error, for OAuth2 clients.
            body["error"] = "unsupported_grant_type".into();
        }
        let mut r = response::json(status, &body);
        match self {
            AuthError::Unauthorized { challenge, .. } => {
                r.headers_mut()
                    .insert(http::header::WWW_AUTHENTICATE, header(&challenge));
            }
            AuthError::TooManyAttempts { retry_after } => {
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    header(&retry_after.as_secs().max(1).to_string()),
                );
            }
            _ => {}
        }
        r
    }
}

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
}

/// Decides what a request may do.
#[derive(Clone)]
pub struct Authorizer {
    auth: Option<Arc<Auth>>,
    /// Swapped whole on reload: a request sees the old rules or the new.
    policy: Arc<RwLock<Arc<Policy>>>,
}

/// The state behind enabled authentication.
struct Auth {
    htpasswd: Option<HtpasswdStore>,
    ldap: Option<LdapBackend>,
    order: Vec<Backend>,
    tokens: TokenService,
    cache: CredentialCache,
    limiter: FailureLimiter,
    challenge: Challenge,
    realm: Option<String>,
}

impl Authorizer {
    /// Everything allowed to everyone (`--no-auth`).
    pub fn open() -> Authorizer {
        Authorizer {
            auth: None,
            policy: Arc::new(RwLock::new(Arc::new(Policy::open()))),
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
        Ok(Authorizer {
            auth: Some(Arc::new(Auth {
                htpasswd,
                ldap,
                order: s.order.clone(),
                tokens,
                cache: CredentialCache::new(s.cache_ttl),
                limiter: FailureLimiter::new(s.failure_limits.0, s.failure_limits.1),
                challenge: s.challenge,
                realm: s.realm.clone(),
            })),
            policy: Arc::new(RwLock::new(Arc::new(policy))),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.auth.is_some()
    }

    /// Re-reads the htpasswd file if it changed.
    pub fn reload(&self) {
        if let Some(store) = self.auth.as_ref().and_then(|a| a.htpasswd.as_ref()) {
            match store.reload() {
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
            let claims = auth
                .verify_access(raw)
                .map_err(|why| AuthError::Unauthorized {
                    challenge: auth.challenge_for(
                        &route,
                        action,
                        info.origin,
                        Some("invalid_token"),
                    ),
                    message: format!("authentication required: {why}"),
                })?;
            (subject_of(&policy, &claims), Some(claims.access.clone()))
        } else if let Some(creds) = basic_credentials(value) {
            let identity = auth
                .authenticate(&creds, info.peer)
                .await
                .map_err(|e| match e {
                    AuthError::Unauthorized { message, .. } => AuthError::Unauthorized {
                        challenge: auth.challenge_for(&route, action, info.origin, None),
                        message,
                    },
                    other => other,
                })?;
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
        let login = || AuthError::Unauthorized {
            challenge: auth.challenge_for(&route, action, info.origin, None),
            message: "authentication required".into(),
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
            // Answer as for a missing repository where a listing would
            // otherwise reveal that it exists.
            return Err(match route {
                Route::Tags(_) | Route::Referrers(..) => AuthError::Route(OciError::NameUnknown),
                ref r => AuthError::Denied {
                    repo: r.repo().map(|n| n.to_string()).unwrap_or_default(),
                    action: action.map(Action::as_str).unwrap_or("pull"),
                },
            });
        }
        if !scoped {
            return Err(AuthError::Unauthorized {
                challenge: auth.challenge_for(
                    &route,
                    action,
                    info.origin,
                    Some("insufficient_scope"),
                ),
                message: "authentication required: the token does not grant this action".into(),
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

    /// Answers `GET`/`POST /auth/token`.
    pub async fn token_endpoint(
        &self,
        parts: &http::request::Parts,
        body: Option<bytes::Bytes>,
        peer: IpAddr,
    ) -> Response<Body> {
        match &self.auth {
            Some(auth) => endpoint::handle(auth, &self.policy(), parts, body, peer).await,
            None => response::error(&OciError::NotFound),
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

/// `Bearer xyz` -> `xyz`, for a case-insensitive scheme name.
fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = value.trim().split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// Decodes `Authorization: Basic ...`.
fn basic_credentials(value: &str) -> Option<Credentials> {
    let encoded = strip_scheme(value, "basic")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(Credentials {
        user: user.to_string(),
        password: Secret::new(password),
    })
}

impl Auth {
    fn realm(&self, origin: &str) -> String {
        self.realm
            .clone()
            .unwrap_or_else(|| format!("{origin}{TOKEN_PATH}"))
    }

    /// The `WWW-Authenticate` value for a route.
    fn challenge_for(
        &self,
        route: &Route,
        action: Option<Action>,
        origin: &str,
        error: Option<&str>,
    ) -> String {
        match self.challenge {
            Challenge::Basic => "Basic realm=\"regproxy\", charset=\"UTF-8\"".to_string(),
            Challenge::Token => {
                let mut c = format!(
                    "Bearer realm=\"{}\",service=\"{}\"",
                    self.realm(origin),
                    self.tokens.service
                );
                let scope = match (route, action) {
                    (Route::Catalog, _) => Some("registry:catalog:*".to_string()),
                    (r, Some(a)) => r.repo().map(|repo| {
                        let actions = if a == Action::Push {
                            "pull,push"
                        } else {
                            a.as_str()
                        };
                        format!("repository:{repo}:{actions}")
                    }),
                    _ => None,
                };
                if let Some(s) = scope {
                    c.push_str(&format!(",scope=\"{s}\""));
                }
                if let Some(e) = error {
                    c.push_str(&format!(",error=\"{e}\""));
                }
                c
            }
        }
    }

    /// Verifies an access token, and that its user still exists with the
    /// same password (htpasswd).
    fn verify_access(&self, token: &str) -> Result<Arc<token::Claims>, String> {
        let claims = self
            .tokens
            .verify_access(token)
            .map_err(|e| e.to_string())?;
        self.still_valid(&claims)?;
        Ok(claims)
    }

    fn still_valid(&self, claims: &token::Claims) -> Result<(), String> {
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

    fn version_of(&self, user: &str) -> Option<String> {
        self.htpasswd
            .as_ref()
            .and_then(|s| s.get(user))
            .map(|u| u.version)
    }

    /// Checks a username and password: the cache first, then each backend
    /// in order. bcrypt runs on the blocking pool, LDAP is async.
    async fn authenticate(&self, creds: &Credentials, peer: IpAddr) -> Result<Identity, AuthError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_and_bearer() {
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:pa:ss")
        );
        let c = basic_credentials(&v).unwrap();
        assert_eq!(c.user, "alice");
        assert_eq!(c.password.expose(), "pa:ss");
        assert!(basic_credentials("Basic !!!").is_none());
        assert!(basic_credentials("Bearer x").is_none());
        assert_eq!(strip_scheme("bearer abc", "bearer"), Some("abc"));
    }
}
