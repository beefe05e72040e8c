//! Why a request is not allowed (yet), and the one place such an answer
//! becomes an HTTP response (OCI error JSON, status, challenge headers).

use std::time::Duration;

use http::{Response, StatusCode};

use super::identity::Unavailable;
use crate::oci::response::{self, header, Body};
use crate::oci::OciError;

/// Why a request is not allowed (yet).
#[derive(Debug)]
pub enum AuthError {
    /// Not a valid request for this route (e.g. 405).
    Route(OciError),
    /// 401: log in (again); `challenge` is the `WWW-Authenticate` value.
    Unauthorized { challenge: String, why: Why },
    /// 403: `user` is logged in, but not allowed to do `action` on `repo`.
    Denied {
        repo: String,
        action: &'static str,
        user: String,
    },
    /// 429: too many failed logins; try again later.
    TooManyAttempts { retry_after: Duration },
    /// 503: a login backend is down.
    Unavailable(Unavailable),
    /// 400: a token request with a `grant_type` we do not serve.
    UnsupportedGrant,
}

/// Why a 401: each says what went wrong and what the client must do, and
/// never what a parser or library said (that goes to the debug log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// No `Authorization` header where one is needed.
    NoCredentials,
    /// An `Authorization` header that is neither Basic nor Bearer, or
    /// Basic that does not decode to `user:password`.
    Malformed,
    /// The token service takes Basic credentials (or none) on `GET`.
    NotBasic,
    /// No such user (or an unusable name or empty password).
    BadLogin,
    /// A user a backend knows, with a wrong password. Answered exactly as
    /// [`Why::BadLogin`] (a client cannot probe names); only the logs tell
    /// them apart, as only a real user's name is logged.
    WrongPassword,
    /// A Bearer token that is not one of ours for this use.
    BadToken,
    ExpiredToken,
    /// A token whose `access` lacks what the request needs.
    Scope,
    /// A refresh token that is not one of ours.
    BadRefresh,
    ExpiredRefresh,
    /// The user behind a token is gone, renamed, or has a new password.
    UserChanged,
}

impl Why {
    pub fn message(self) -> &'static str {
        match self {
            Why::NoCredentials => "authentication required; hint: log in first (docker login), or send Basic credentials",
            Why::Malformed => "authentication required: the Authorization header is not Basic user:password or a Bearer token; hint: log in again (docker login)",
            Why::NotBasic => "authentication required: the token service takes Basic credentials; hint: send Authorization: Basic, or no Authorization header for anonymous access",
            Why::BadLogin | Why::WrongPassword => "authentication required: invalid username or password; hint: check both and log in again",
            Why::BadToken => "authentication required: the token is not valid here (malformed, changed, or from another registry); hint: get a new one from the token service (docker login again)",
            Why::ExpiredToken => "authentication required: the token has expired; hint: get a new one from the token service",
            Why::Scope => "authentication required: the token does not grant this action; hint: ask the token service for a token with this scope",
            Why::BadRefresh => "authentication required: the refresh token is not valid here (malformed, changed, or from another registry); hint: log in again (docker login)",
            Why::ExpiredRefresh => "authentication required: the refresh token has expired; hint: log in again (docker login)",
            Why::UserChanged => "authentication required: the user was removed or renamed, or their password changed, since this token was issued; hint: log in again (docker login)",
        }
    }
}

impl AuthError {
    /// A 401 whose challenge the caller fills in ([`AuthError::challenged`]).
    pub fn unauthorized(why: Why) -> AuthError {
        AuthError::Unauthorized {
            challenge: String::new(),
            why,
        }
    }

    /// This error with `challenge` as its `WWW-Authenticate` value, if it
    /// is a 401.
    pub fn challenged(self, challenge: String) -> AuthError {
        match self {
            AuthError::Unauthorized { why, .. } => AuthError::Unauthorized { challenge, why },
            other => other,
        }
    }

    /// For a 403, who was denied what (user, action): for the access log.
    pub fn denied(&self) -> Option<(&str, &'static str)> {
        match self {
            AuthError::Denied { user, action, .. } => Some((user, action)),
            _ => None,
        }
    }

    /// A real user's wrong password: the login name may then be logged
    /// (an unknown name is often a password typed in the wrong field).
    pub fn is_wrong_password(&self) -> bool {
        matches!(
            self,
            AuthError::Unauthorized {
                why: Why::WrongPassword,
                ..
            }
        )
    }

    /// The one place an auth error becomes an HTTP answer.
    pub fn into_response(self) -> Response<Body> {
        let (status, code, message) = match &self {
            AuthError::Route(e) => return response::error(e),
            AuthError::Unauthorized { why, .. } => (
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                why.message().to_string(),
            ),
            AuthError::Denied { .. } => (
                StatusCode::FORBIDDEN,
                "DENIED",
                "requested access to the resource is denied".to_string(),
            ),
            AuthError::TooManyAttempts { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                format!(
                    "too many failed logins; try again in {} s; hint: check the user name and password before trying again",
                    retry_after.as_secs().max(1)
                ),
            ),
            AuthError::UnsupportedGrant => (
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                "unsupported_grant_type: grant_type must be `password` or `refresh_token`; \
                 hint: send the OAuth2 form Docker sends, or GET with Basic credentials"
                    .to_string(),
            ),
            AuthError::Unavailable(u) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!("{u}; hint: try again later, or ask the registry's operator to check the directory"),
            ),
        };
        let mut error = serde_json::json!({ "code": code, "message": message });
        // Docker retries a DENIED error that carries only the default message
        // and no detail, as if it were transient; the access record (as
        // Distribution sends it) makes it final.
        if let AuthError::Denied { repo, action, .. } = &self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_401_says_what_to_do() {
        use Why::*;
        for why in [
            NoCredentials,
            Malformed,
            NotBasic,
            BadLogin,
            WrongPassword,
            BadToken,
            ExpiredToken,
            Scope,
            BadRefresh,
            ExpiredRefresh,
            UserChanged,
        ] {
            let m = why.message();
            assert!(m.starts_with("authentication required"), "{m}");
            assert!(m.contains("; hint: "), "{m}");
        }
    }
}
