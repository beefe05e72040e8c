//! The per-request pipeline: route -> authorize -> registry, plus the few
//! endpoints the front answers itself (`/`, `/ca.crt`); `/ui/...` goes to
//! the web UI ([`crate::ui`]), which authorizes through the same
//! authorizer. Every answer gets `Docker-Distribution-Api-Version` and one
//! access-log line, and every answer to `HEAD` is made headers-only here,
//! once (HTTP/2 sends a body it is given, even for `HEAD`).

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};

use super::access_log::Record;
use crate::auth::{self, Authorizer};
use crate::metrics::RouteKind;
use crate::oci::response::{self, Body};
use crate::oci::{Action, OciError, Route};
use crate::registry::{self, Registry};

/// Everything a request needs, shared by all connections.
pub struct Front {
    pub registry: Registry,
    pub authorizer: Authorizer,
    pub trust_forwarded_headers: bool,
    pub scheme: &'static str,
    pub ca_pem: Option<Bytes>,
    /// What the web UI's GC button does (the scheduled collection's options).
    pub gc: crate::registry::gc::GcOptions,
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let body = body.into();
    let mut r = response::status(status);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(CONTENT_LENGTH, body.len().into());
    *r.body_mut() = response::full(body);
    r
}

impl Front {
    pub async fn handle<B>(&self, req: Request<B>, peer: SocketAddr) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + Unpin + 'static,
        B::Error: Into<response::BoxError>,
    {
        let mut record = Record::new(&req, peer);
        let method = req.method().clone();
        let mut resp = self.pipeline(req, peer, &mut record).await;
        resp.headers_mut().insert(
            "Docker-Distribution-Api-Version",
            HeaderValue::from_static("registry/2.0"),
        );
        if method == Method::HEAD {
            headers_only(&mut resp);
        }
        record.finish(resp)
    }

    async fn pipeline<B>(
        &self,
        req: Request<B>,
        peer: SocketAddr,
        record: &mut Record,
    ) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + Unpin + 'static,
        B::Error: Into<response::BoxError>,
    {
        if crate::ui::owns(req.uri().path()) {
            record.set_kind(RouteKind::Ui);
            let secure = self.scheme == "https"
                || (self.trust_forwarded_headers
                    && req
                        .headers()
                        .get("x-forwarded-proto")
                        .is_some_and(|v| v == "https"));
            let ui = crate::ui::Ui {
                registry: &self.registry,
                authorizer: &self.authorizer,
                secure,
                ca_pem: self.ca_pem.as_ref(),
                gc: self.gc,
            };
            let resp = ui.handle(req, peer).await;
            if let Some(crate::ui::SignedIn(user)) = resp.extensions().get() {
                record.set_access(Some(user), None);
            }
            return resp;
        }
        let front_page = matches!(req.uri().path(), "/" | "/ca.crt");
        if front_page && !matches!(*req.method(), Method::GET | Method::HEAD) {
            return response::error(&OciError::MethodNotAllowed {
                method: req.method().clone(),
                allow: "GET, HEAD",
            });
        }
        match req.uri().path() {
            "/" if wants_html(req.headers()) => return see_other("/ui/"),
            "/" => {
                return text(
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    "regproxy container registry: the API is at /v2/, the web UI at /ui/, the CA certificate at /ca.crt\n",
                )
            }
            "/ca.crt" => {
                return match &self.ca_pem {
                    Some(pem) => text(StatusCode::OK, "application/x-x509-ca-cert", pem.clone()),
                    None => text(
                        StatusCode::NOT_FOUND,
                        "text/plain; charset=utf-8",
                        "this registry's certificate was not issued by the built-in CA; ask its operator for the CA certificate\n",
                    ),
                }
            }
            _ => {}
        }
        let (parts, body) = req.into_parts();
        let origin = self.origin(&parts.uri, &parts.headers);
        if parts.uri.path() == auth::TOKEN_PATH {
            record.set_kind(RouteKind::Token);
            let body = match read_small_body(body).await {
                Ok(b) => b,
                Err(e) => return response::error(&e),
            };
            record.add_bytes_in(body.as_ref().map_or(0, |b| b.len() as u64));
            let (resp, user) = self
                .authorizer
                .token_endpoint(&parts, body, peer.ip())
                .await;
            record.set_access(user.as_deref(), None);
            return resp;
        }
        let route = match Route::parse(parts.uri.path()) {
            Ok(r) => r,
            Err(e) => return response::error(&e),
        };
        record.set_route(&route);
        let info = auth::RequestInfo {
            method: &parts.method,
            headers: &parts.headers,
            peer: peer.ip(),
            origin: &origin,
            query: parts.uri.query(),
        };
        let access = match self.authorizer.authorize(route, &info).await {
            Ok(a) => a,
            Err(e) => {
                if let Some((user, action)) = e.denied() {
                    record.set_access(Some(user), Some(action));
                }
                return e.into_response();
            }
        };
        record.set_access(access.user(), access.action().map(Action::as_str));
        let base_url = self.base_url(&parts.uri, &parts.headers);
        let body = record.count_body(body);
        self.registry
            .handle(access, registry::Request::new(parts, body, base_url))
            .await
    }

    /// `scheme://host:port` as the client reached us (for the token realm):
    /// the forwarding headers when trusted, else the request's authority
    /// (HTTP/2 `:authority`, or an absolute-form HTTP/1 target), else `Host`.
    fn origin(&self, uri: &http::Uri, headers: &http::HeaderMap) -> String {
        let base = self.base_url(uri, headers);
        if !base.is_empty() {
            return base;
        }
        let host = uri
            .authority()
            .map(|a| a.as_str())
            .filter(|a| !a.contains('@'))
            .or_else(|| {
                headers
                    .get(http::header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .filter(|h| h.parse::<http::uri::Authority>().is_ok())
            })
            .unwrap_or("localhost");
        format!("{}://{host}", self.scheme)
    }

    /// The prefix for `Location` headers (and the token realm, when trusted): relative by default; absolute,
    /// from `X-Forwarded-Proto` and `X-Forwarded-Host` (or the request's
    /// authority, or `Host`), when configured to trust them.
    fn base_url(&self, uri: &http::Uri, headers: &http::HeaderMap) -> String {
        if !self.trust_forwarded_headers {
            return String::new();
        }
        let first = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let proto = match first("x-forwarded-proto") {
            Some("https") => "https",
            Some("http") => "http",
            _ => self.scheme,
        };
        let host = first("x-forwarded-host")
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .or_else(|| first("host"))
            .filter(|h| h.parse::<http::uri::Authority>().is_ok());
        match host {
            Some(h) => format!("{proto}://{h}"),
            None => String::new(),
        }
    }
}

/// Whether a request to `/` comes from a browser (it accepts HTML).
fn wants_html(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

fn see_other(to: &'static str) -> Response<Body> {
    let mut r = response::status(StatusCode::SEE_OTHER);
    r.headers_mut()
        .insert(http::header::LOCATION, HeaderValue::from_static(to));
    r.headers_mut().insert(CONTENT_LENGTH, 0.into());
    r
}

/// Makes an answer to `HEAD` headers-only: `Content-Length` stays what `GET`
/// would send (set from the body's exact size when the handler left it
/// out), the body goes.
fn headers_only(resp: &mut Response<Body>) {
    use http_body::Body as _;
    if !resp.headers().contains_key(CONTENT_LENGTH) {
        if let Some(n) = resp.body().size_hint().exact() {
            resp.headers_mut().insert(CONTENT_LENGTH, n.into());
        }
    }
    *resp.body_mut() = response::empty();
}

/// The body of a token request: a small form, read whole (at most 64 KiB).
async fn read_small_body<B>(body: B) -> Result<Option<Bytes>, OciError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<response::BoxError>,
{
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, 64 * 1024);
    match limited.collect().await {
        Ok(c) => {
            let b = c.to_bytes();
            Ok((!b.is_empty()).then_some(b))
        }
        Err(_) => Err(OciError::SizeInvalid(
            "the token request body is larger than 64 KiB or broken".into(),
        )),
    }
}
