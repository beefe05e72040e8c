//! The UI's HTTP details: reading a form body, the session and sign-in
//! cookies, HTML answers and redirects, and the security headers every UI
//! answer carries.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body::Body as HttpBody;

use crate::oci::response::{self, Body, BoxError};

/// The session cookie.
pub const SESSION_COOKIE: &str = "regproxy_session";
/// The sign-in form's CSRF cookie (double submit: before a session exists).
pub const LOGIN_COOKIE: &str = "regproxy_login";

/// The largest form body read (a sign-in, a delete, a GC button).
const MAX_FORM: usize = 16 * 1024;

/// A form body, `application/x-www-form-urlencoded`. Its values may hold a
/// password: it is never logged.
pub struct Form(HashMap<String, String>);

impl Form {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn empty() -> Form {
        Form(HashMap::new())
    }
}

pub async fn read_form<B>(body: B) -> Result<Form, Response<Body>>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, MAX_FORM).collect().await {
        Ok(c) => Ok(Form(
            form_urlencoded::parse(&c.to_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )),
        Err(_) => Err(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the form is larger than 16 KiB or broken; hint: send the page's own form",
        )),
    }
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, `Secure` over TLS,
/// scoped to `/ui`; `max_age` zero deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let v = format!(
        "{name}={value}; Path=/ui; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// An HTML page with `status`.
pub fn html(status: StatusCode, markup: maud::Markup) -> Response<Body> {
    let body = markup.into_string();
    let mut r = response::status(status);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, body.len().into());
    *r.body_mut() = response::full(body);
    r
}

/// A plain-text answer (for what is not a page: a broken form).
pub fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = response::status(status);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, text.len().into());
    *r.body_mut() = response::full(text);
    r
}

/// `303 See Other` to a path of ours.
pub fn redirect(to: &str) -> Response<Body> {
    let mut r = response::status(StatusCode::SEE_OTHER);
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut().insert(header::CONTENT_LENGTH, 0.into());
    r
}

/// An embedded asset (style sheet, script), cacheable for an hour.
pub fn asset(content_type: &'static str, text: &'static str) -> Response<Body> {
    let mut r = response::status(StatusCode::OK);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, text.len().into());
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    *r.body_mut() = response::full(text);
    r
}

/// No script or style but our own files, no framing, no caching of pages
/// (they hold data), no sniffing, no referrer to other sites.
pub fn security_headers(resp: &mut Response<Body>) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; regproxy_session=xyz ; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
        let set = set_cookie(SESSION_COOKIE, "v", Duration::from_secs(60), true);
        let s = set.to_str().unwrap();
        for want in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/ui",
            "Max-Age=60",
        ] {
            assert!(s.contains(want), "{s}");
        }
        let plain = set_cookie(SESSION_COOKIE, "v", Duration::from_secs(60), false);
        assert!(!plain.to_str().unwrap().contains("Secure"));
    }
}
