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
