//! The web UI under `/ui/`: server-rendered pages to browse the registry,
//! delete tags and manifests, collect garbage and connect a machine, on
//! the registry's own port and behind its logins and rules.
//!
//! A request flows proxy -> ui -> auth -> registry: the UI finds the
//! browser's session ([`wire`]), asks [`Authorizer`] for the
//! [`crate::auth::Authorized`] proof of what the page reads or changes,
//! and hands that proof to the [`Registry`], as the API does. A repository
//! the user may not pull is answered as one that does not exist (404).
//! Every state-changing form carries the session's CSRF token
//! ([`handlers`]); every page is escaped HTML ([`pages`]) with security
//! headers ([`wire`]).

mod admin;
mod handlers;
mod layout;
mod pages;
mod route;
mod signin;
mod wire;

use std::net::SocketAddr;

use bytes::Bytes;
use http_body::Body as HttpBody;

use crate::auth::Authorizer;
use crate::oci::response::{Body, BoxError};
use crate::registry::Registry;

/// The path prefix the UI answers under.
pub const PREFIX: &str = "/ui";

/// What the UI needs from the front, shared by all requests.
pub struct Ui<'a> {
    pub registry: &'a Registry,
    pub authorizer: &'a Authorizer,
    /// Whether the browser reached us over TLS (session cookies are then
    /// `Secure`).
    pub secure: bool,
    /// The built-in CA's certificate, for the "connect a machine" page.
    pub ca_pem: Option<&'a Bytes>,
    /// How the GC button collects (untagged, grace), as scheduled ones do.
    pub gc: crate::registry::gc::GcOptions,
}

impl Ui<'_> {
    /// Answers one request whose path is `/ui` or starts with `/ui/`.
    pub async fn handle<B>(&self, req: http::Request<B>, peer: SocketAddr) -> http::Response<Body>
    where
        B: HttpBody<Data = Bytes> + Send + Sync + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        let form = if parts.method == http::Method::POST {
            match wire::read_form(body).await {
                Ok(f) => Some(f),
                Err(resp) => return resp,
            }
        } else {
            None
        };
        let mut resp = handlers::dispatch(self, &parts, form, peer).await;
        wire::security_headers(&mut resp);
        resp
    }
}

/// Who a UI answer was for (signed-in user), for the access log: an
/// extension of the response.
#[derive(Debug, Clone)]
pub struct SignedIn(pub String);

/// Whether `path` belongs to the UI.
pub fn owns(path: &str) -> bool {
    path == PREFIX || path.starts_with("/ui/")
}
