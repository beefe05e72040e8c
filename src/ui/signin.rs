//! Signing in and out: the sign-in form with its own CSRF cookie (there
//! is no session yet to hold a token), the check of the user and password
//! through the authorizer (backends, failure pauses, audit), the session
//! cookie, and sign-out.

use std::net::SocketAddr;
use std::time::Duration;

use http::request::Parts;
use http::{header, StatusCode};

use super::handlers::{auth_problem, csrf_refused, Ctx};
use super::layout::Viewer;
use super::wire::{self, Form, LOGIN_COOKIE, SESSION_COOKIE};
use super::{pages, Ui};
use crate::auth::secret::Secret;
use crate::auth::AuthError;
use crate::oci::response::Body;

type Resp = http::Response<Body>;

pub(super) fn login_form(
    ui: &Ui<'_>,
    user: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Resp {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut r = wire::html(status, pages::login(&token, user, message));
    let c = wire::set_cookie(LOGIN_COOKIE, &token, Duration::from_secs(3600), ui.secure);
    r.headers_mut().append(header::SET_COOKIE, c);
    r
}

pub(super) async fn sign_in(
    ui: &Ui<'_>,
    parts: &Parts,
    form: Option<Form>,
    peer: SocketAddr,
) -> Resp {
    let form = form.unwrap_or_else(Form::empty);
    let expected = wire::cookie(&parts.headers, LOGIN_COOKIE).unwrap_or("");
    let sent = form.get("csrf").unwrap_or("");
    if expected.is_empty() || expected != sent {
        return csrf_refused(&Viewer::NOBODY);
    }
    let user = form.get("user").unwrap_or("").trim();
    let password = Secret::new(form.get("password").unwrap_or(""));
    match ui.authorizer.sign_in(user, password, peer.ip()).await {
        Ok(started) => {
            let mut r = wire::redirect("/ui/");
            let h = r.headers_mut();
            let c = wire::set_cookie(
                SESSION_COOKIE,
                &started.cookie_value,
                started.max_age,
                ui.secure,
            );
            h.append(header::SET_COOKIE, c);
            h.append(
                header::SET_COOKIE,
                wire::set_cookie(LOGIN_COOKIE, "", Duration::ZERO, ui.secure),
            );
            r
        }
        Err(AuthError::Unauthorized { .. }) => login_form(
            ui,
            user,
            Some("Invalid user name or password. Check both and try again."),
            StatusCode::UNAUTHORIZED,
        ),
        Err(AuthError::TooManyAttempts { retry_after }) => login_form(
            ui,
            user,
            Some(&format!(
                "Too many failed sign-ins; try again in {} s.",
                retry_after.as_secs().max(1)
            )),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(e) => auth_problem(&Viewer::NOBODY, e),
    }
}

pub(super) fn sign_out(ctx: &Ctx<'_>) -> Resp {
    if let Some(c) = wire::cookie(&ctx.parts.headers, SESSION_COOKIE) {
        ctx.ui.authorizer.sign_out(c);
    }
    let mut r = wire::redirect("/ui/login");
    let gone = wire::set_cookie(SESSION_COOKIE, "", Duration::ZERO, ctx.ui.secure);
    r.headers_mut().append(header::SET_COOKIE, gone);
    r
}
