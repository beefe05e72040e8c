//! The embedded registry: the OCI Distribution / Docker Registry HTTP API V2
//! on top of a [`storage::Storage`] backend.
//!
//! The proxy calls [`Registry::handle`] in-process with an
//! [`crate::auth::Authorized`] value, so no endpoint can be reached without
//! the authorization step having run.

pub mod blobs;
pub mod browse;
pub mod cache;
pub mod error;
pub mod gc;
pub mod listing;
pub mod manifests;
pub mod storage;
pub mod uploads;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Response};

use crate::auth::Authorized;
use crate::oci::response::{self, BoxError};
use crate::oci::{Body, ByteStream, Query, Route};
pub use error::RegistryError;
use storage::Storage;

/// A request as the registry sees it: already routed and authorized.
pub struct Request {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Query,
    pub body: ByteStream,
    /// Whether the body is known to be empty (so no write is needed).
    pub body_is_empty: bool,
    /// Prefix for `Location` headers: empty for relative URLs, or
    /// `https://host:port` when built from trusted forwarding headers.
    pub base_url: String,
}

impl Request {
    /// Builds a registry request from an HTTP request's parts and body.
    pub fn new<B>(parts: http::request::Parts, body: B, base_url: String) -> Request
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        use http_body_util::BodyExt;
        let body_is_empty = body.size_hint().exact() == Some(0);
        Request {
            query: Query::parse(parts.uri.query()),
            method: parts.method,
            headers: parts.headers,
            body: response::byte_stream(body.into_data_stream()),
            body_is_empty,
            base_url,
        }
    }

    pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The registry: storage plus the state of uploads in progress.
#[derive(Clone)]
pub struct Registry {
    storage: Arc<dyn Storage>,
    uploads: Arc<uploads::UploadStates>,
    manifests: Arc<cache::ManifestCache>,
    /// Digests requests referenced lately (garbage collection keeps them).
    recent: Arc<gc::recent::Recent>,
    gc: Arc<gc::GcState>,
}

pub type HandlerResult = Result<Response<Body>, RegistryError>;

impl Registry {
    pub fn new(storage: Arc<dyn Storage>) -> Registry {
        Registry {
            storage,
            uploads: Arc::default(),
            manifests: Arc::new(cache::ManifestCache::new(cache::DEFAULT_BUDGET)),
            recent: Arc::default(),
            gc: Arc::default(),
        }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Answers one authorized request. Never fails: errors become the OCI
    /// error JSON here.
    pub async fn handle(&self, access: Authorized, req: Request) -> Response<Body> {
        let result = self.dispatch(&access, req).await;
        result.unwrap_or_else(|e| {
            if e.is_server_fault() {
                tracing::error!(error = %e, "request failed");
            } else {
                tracing::debug!(error = %e, "request refused");
            }
            response::error(&e.into_oci())
        })
    }

    async fn dispatch(&self, access: &Authorized, req: Request) -> HandlerResult {
        let m = &req.method;
        match access.route() {
            Route::Base => Ok(response::json(http::StatusCode::OK, &serde_json::json!({}))),
            Route::Catalog => listing::catalog(self, access, &req).await,
            Route::Tags(repo) => listing::tags(self, repo, &req).await,
            Route::Referrers(repo, d) => listing::referrers(self, repo, d, &req).await,
            Route::Blob(repo, d) if m == Method::DELETE => blobs::delete(self, repo, d).await,
            Route::Blob(repo, d) => blobs::get(self, repo, d, &req).await,
            Route::Uploads(repo) => uploads::start(self, access, repo, req).await,
            Route::Upload(repo, id) => uploads::handle(self, repo, *id, req).await,
            Route::Manifest(repo, r) if m == Method::PUT => {
                manifests::put(self, repo, r, req).await
            }
            Route::Manifest(repo, r) if m == Method::DELETE => {
                manifests::delete(self, repo, r).await
            }
            Route::Manifest(repo, r) => manifests::get(self, repo, r, &req).await,
        }
    }
}
