//! The Docker token service at `/auth/token`.
//!
//! - `GET` with `Authorization: Basic` (and `service`, `scope`, `account`,
//!   `offline_token=true`) — what `docker login` and pulls use;
//! - `POST` with the OAuth2 form (`grant_type=password` or
//!   `refresh_token`, `scope`, `access_type=offline`) — what Docker uses
//!   with a stored identity token.
//!
//! It answers `{"token","access_token","expires_in","issued_at"}` and, when
//! asked for offline access, a `refresh_token`.

use std::net::IpAddr;

use bytes::Bytes;
use http::{Method, Response, StatusCode};

use super::acl::{Policy, Subject};
use super::error::Why;
use super::identity::{Credentials, Identity, Source, Unavailable};
use super::secret::Secret;
use super::token::{ResourceActions, Use};
use super::{basic_credentials, Auth, AuthError};
use crate::metrics::{self, AuthBackend, AuthOutcome};
use crate::oci::names::RepoName;
use crate::oci::response::{self, Body};
use crate::oci::Action;
use crate::oci::Query;

/// Where the token service lives.
pub const TOKEN_PATH: &str = "/auth/token";

/// The token service asks for Basic credentials.
const BASIC_CHALLENGE: &str = "Basic realm=\"regproxy\", charset=\"UTF-8\"";

/// Every value of `key`, each split at spaces: `scope=a&scope=b` and
/// `scope=a%20b` (one parameter, space-separated) ask for the same.
fn all(q: &Query, key: &str) -> Vec<String> {
    q.all(key)
        .flat_map(|v| v.split(' '))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Answers a token request; also returns the user name the access log may
/// show: who got the token, or a real user whose password was wrong (never
/// an unknown name, which may be a password typed in the wrong field).
pub async fn handle(
    auth: &Auth,
    policy: &Policy,
    parts: &http::request::Parts,
    body: Option<Bytes>,
    peer: IpAddr,
) -> (Response<Body>, Option<String>) {
    let mut login = None;
    match issue(auth, policy, parts, body, peer, &mut login).await {
        Ok((r, user)) => (r, Some(user).filter(|u| !u.is_empty())),
        Err(e) => {
            let user = login.filter(|_| e.is_wrong_password());
            (e.challenged(BASIC_CHALLENGE.into()).into_response(), user)
        }
    }
}

/// The token answer and the user it was issued to. `login` is set to the
/// name given for a password login before it is checked.
async fn issue(
    auth: &Auth,
    policy: &Policy,
    parts: &http::request::Parts,
    body: Option<Bytes>,
    peer: IpAddr,
    login: &mut Option<String>,
) -> Result<(Response<Body>, String), AuthError> {
    let (identity, scopes, offline, grant) = match parts.method {
        Method::GET => {
            let q = Query::parse(parts.uri.query());
            let value = parts
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            // No credentials: an anonymous token, holding only what the
            // rules give anonymous users.
            let identity = match basic_credentials(value) {
                Some(creds) => {
                    *login = Some(creds.user.clone());
                    auth.authenticate(&creds, peer).await?
                }
                None if value.is_empty() => Identity {
                    user: String::new(),
                    groups: vec![],
                    source: Source::Anonymous,
                    version: None,
                },
                None => return Err(AuthError::unauthorized(Why::NotBasic)),
            };
            let scopes = all(&q, "scope");
            (
                identity,
                scopes,
                q.get("offline_token") == Some("true"),
                "basic",
            )
        }
        Method::POST => {
            let text = body
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let form = Query::parse(Some(&text));
            let scopes: Vec<String> = form
                .get("scope")
                .map(|s| {
                    s.split(' ')
                        .filter(|x| !x.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            match form.get("grant_type") {
                Some("password") => {
                    let creds = Credentials {
                        user: form.get("username").unwrap_or_default().to_string(),
                        password: Secret::new(form.get("password").unwrap_or_default()),
                    };
                    *login = Some(creds.user.clone());
                    let identity = auth.authenticate(&creds, peer).await?;
                    (
                        identity,
                        scopes,
                        form.get("access_type") == Some("offline"),
                        "password",
                    )
                }
                Some("refresh_token") => {
                    let token = form.get("refresh_token").unwrap_or_default();
                    let identity = auth.refresh(token).await.inspect_err(|e| {
                        if let AuthError::Unauthorized { why, .. } = e {
                            metrics::get().auth(AuthBackend::Token, AuthOutcome::Failure);
                            tracing::info!(target: "regproxy::audit", event = "login_failed", %peer, backend = "token", reason = ?why, "failed login: refresh token refused");
                        }
                    })?;
                    metrics::get().auth(AuthBackend::Token, AuthOutcome::Success);
                    (identity, scopes, false, "refresh_token")
                }
                _ => return Err(AuthError::UnsupportedGrant),
            }
        }
        ref m => {
            return Err(AuthError::Route(crate::oci::OciError::MethodNotAllowed {
                method: m.clone(),
                allow: "GET, POST",
            }))
        }
    };

    // Only the allowed subset of what was asked for.
    let subject = if identity.source == Source::Anonymous {
        Subject::anonymous()
    } else {
        let mut groups = identity.groups.clone();
        groups.extend(policy.groups_of(&identity.user));
        Subject {
            user: Some(identity.user.clone()),
            groups,
        }
    };
    let access = allowed_subset(policy, &subject, &scopes);
    // htpasswd: the hash's fingerprint; LDAP: the entry's change stamps.
    let pwv = identity.version.clone();
    let issue_err = |e: super::token::TokenError| {
        tracing::error!(error = %e, "signing a token failed");
        AuthError::Unavailable(Unavailable {
            reason: "the token service could not sign a token".into(),
        })
    };
    let (token, claims) = auth
        .tokens
        .issue(
            &identity.user,
            identity.source,
            pwv.clone(),
            identity.groups.clone(),
            access,
            Use::Access,
        )
        .map_err(issue_err)?;
    let mut body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": claims.exp - claims.iat,
        "issued_at": time::OffsetDateTime::from_unix_timestamp(claims.iat as i64)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
    });
    if offline {
        let (refresh, _) = auth
            .tokens
            .issue_for(
                &identity.user,
                identity.source,
                pwv,
                identity.groups.clone(),
                vec![],
                Use::Refresh,
                auth.refresh_lifetime(&identity),
            )
            .map_err(issue_err)?;
        body["refresh_token"] = refresh.into();
    }
    tracing::info!(user = %identity.user, grant, scopes = scopes.len(), offline, "token issued");
    Ok((response::json(StatusCode::OK, &body), identity.user))
}

/// The part of each requested scope the rules allow; entries with nothing
/// left are dropped. The catalog is granted to logged-in users (the listing
/// itself is filtered).
fn allowed_subset(policy: &Policy, subject: &Subject, scopes: &[String]) -> Vec<ResourceActions> {
    let mut out = Vec::new();
    for mut r in scopes
        .iter()
        .filter_map(|s| ResourceActions::parse_scope(s))
    {
        if r.kind == "registry" {
            if subject.user.is_some() {
                out.push(r);
            }
            continue;
        }
        let Ok(repo) = r.name.parse::<RepoName>() else {
            continue;
        };
        let mut actions = Vec::new();
        for a in [Action::Pull, Action::Push, Action::Delete] {
            let asked = r.actions.iter().any(|x| x == a.as_str() || x == "*");
            if asked && policy.decide(subject, &repo, a).allowed {
                actions.push(a.as_str().to_string());
            }
        }
        if !actions.is_empty() {
            r.actions = actions;
            out.push(r);
        }
    }
    out
}
