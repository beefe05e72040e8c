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

use super::identity::{Credentials, Identity, Source, Unavailable};
use super::secret::Secret;
use super::token::{ResourceActions, Use};
use super::{basic_credentials, Auth, AuthError};
use crate::registry::response::{self, Body};
use crate::registry::Query;

/// Where the token service lives.
pub const TOKEN_PATH: &str = "/auth/token";

fn unauthorized(message: &str) -> AuthError {
    AuthError::Unauthorized {
        challenge: "Basic realm=\"regproxy\", charset=\"UTF-8\"".into(),
        message: message.into(),
    }
}

fn all(q: &Query, key: &str) -> Vec<String> {
    q.all(key).map(str::to_string).collect()
}

pub async fn handle(
    auth: &Auth,
    parts: &http::request::Parts,
    body: Option<Bytes>,
    peer: IpAddr,
) -> Response<Body> {
    match issue(auth, parts, body, peer).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn issue(
    auth: &Auth,
    parts: &http::request::Parts,
    body: Option<Bytes>,
    peer: IpAddr,
) -> Result<Response<Body>, AuthError> {
    let (identity, scopes, offline, grant) = match parts.method {
        Method::GET => {
            let q = Query::parse(parts.uri.query());
            let value = parts
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let creds = basic_credentials(value).ok_or_else(|| {
                unauthorized("authentication required: log in with a username and password")
            })?;
            let identity = login(auth, &creds, peer).await?;
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
                    let identity = login(auth, &creds, peer).await?;
                    (
                        identity,
                        scopes,
                        form.get("access_type") == Some("offline"),
                        "password",
                    )
                }
                Some("refresh_token") => {
                    let token = form.get("refresh_token").unwrap_or_default();
                    let identity = refresh(auth, token).await?;
                    (identity, scopes, false, "refresh_token")
                }
                _ => {
                    return Err(AuthError::Route(
                        crate::registry::RegistryError::Unsupported(
                            "grant_type must be `password` or `refresh_token`".into(),
                        ),
                    ))
                }
            }
        }
        ref m => {
            return Err(AuthError::Route(
                crate::registry::RegistryError::MethodNotAllowed {
                    method: m.clone(),
                    allow: "GET, POST",
                },
            ))
        }
    };

    // Every authenticated user gets what they ask for; per-namespace rules
    // narrow this to the allowed subset.
    let access: Vec<ResourceActions> = scopes
        .iter()
        .filter_map(|s| ResourceActions::parse_scope(s))
        .collect();
    let pwv = auth
        .version_of(&identity.user)
        .filter(|_| identity.source == Source::Htpasswd);
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
            .issue(
                &identity.user,
                identity.source,
                pwv,
                identity.groups.clone(),
                vec![],
                Use::Refresh,
            )
            .map_err(issue_err)?;
        body["refresh_token"] = refresh.into();
    }
    tracing::info!(user = %identity.user, grant, scopes = scopes.len(), offline, "token issued");
    Ok(response::json(StatusCode::OK, &body))
}

async fn login(auth: &Auth, creds: &Credentials, peer: IpAddr) -> Result<Identity, AuthError> {
    auth.authenticate(creds, peer).await.map_err(|e| match e {
        AuthError::Unauthorized { message, .. } => unauthorized(&message),
        other => other,
    })
}

/// A refresh token stands for a login as long as the user is still there
/// (with the same password, for htpasswd users).
async fn refresh(auth: &Auth, token: &str) -> Result<Identity, AuthError> {
    let claims = auth
        .tokens
        .verify(token, Use::Refresh)
        .map_err(|e| unauthorized(&format!("authentication required: {e}; log in again")))?;
    auth.still_valid(&claims)
        .map_err(|why| unauthorized(&format!("authentication required: {why}")))?;
    if claims.src == Source::Ldap {
        let exists = match &auth.ldap {
            Some(ldap) => ldap
                .user_exists(&claims.sub)
                .await
                .map_err(AuthError::Unavailable)?,
            None => false,
        };
        if !exists {
            return Err(unauthorized(
                "authentication required: the user is no longer in the directory; log in again",
            ));
        }
    }
    Ok(Identity {
        user: claims.sub,
        groups: claims.groups,
        source: claims.src,
    })
}
