//! The front: accepts connections, and for each request runs the pipeline
//! route -> authorize -> registry, in-process.
//!
//! [`run`] is the one entry point; the CLI and the tests both call it with a
//! bound listener and a shutdown future (as in mini-redis).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::auth::Authorizer;
use crate::config::Config;
use crate::registry::response::{self, Body};
use crate::registry::storage::fs::FsStorage;
use crate::registry::{self, Registry, Route};

/// How long in-flight requests get to finish after shutdown is asked.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot open storage at {path}: {source}")]
    Storage {
        path: String,
        source: std::io::Error,
    },
}

/// Everything a request needs, shared by all connections.
struct Front {
    registry: Registry,
    authorizer: Authorizer,
    trust_forwarded_headers: bool,
    scheme: &'static str,
}

/// Serves the registry on `listener` until `shutdown` completes, then lets
/// in-flight requests finish (bounded by a timeout).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProxyError> {
    let storage = FsStorage::open(&config.storage_root).map_err(|source| ProxyError::Storage {
        path: config.storage_root.display().to_string(),
        source,
    })?;
    let front = Arc::new(Front {
        registry: Registry::new(Arc::new(storage)),
        authorizer: Authorizer::open(),
        trust_forwarded_headers: config.trust_forwarded_headers,
        scheme: "http",
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // E.g. out of file descriptors: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let front = front.clone();
                let service = hyper::service::service_fn(move |req| {
                    let front = front.clone();
                    async move { Ok::<_, Infallible>(front.handle(req, peer).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("some requests did not finish in time"),
    }
    Ok(())
}

impl Front {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let mut resp = self.pipeline(req).await;
        resp.headers_mut().insert(
            "Docker-Distribution-Api-Version",
            HeaderValue::from_static("registry/2.0"),
        );
        tracing::info!(
            %peer,
            %method,
            path = %path,
            status = resp.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request"
        );
        resp
    }

    async fn pipeline(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path();
        if path == "/" {
            let mut r = response::status(StatusCode::OK);
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            let text = "regproxy container registry: the API is at /v2/\n";
            r.headers_mut()
                .insert(http::header::CONTENT_LENGTH, text.len().into());
            *r.body_mut() = response::full(text);
            return r;
        }
        let access = match Route::parse(path)
            .and_then(|route| self.authorizer.authorize(req.method(), route))
        {
            Ok(a) => a,
            Err(e) => return response::error(&e),
        };
        let base_url = self.base_url(req.headers());
        let (parts, body) = req.into_parts();
        self.registry
            .handle(access, registry::Request::new(parts, body, base_url))
            .await
    }

    /// The prefix for `Location` headers: relative by default; absolute,
    /// from `X-Forwarded-Proto` and `X-Forwarded-Host` (or `Host`), when
    /// configured to trust them.
    fn base_url(&self, headers: &http::HeaderMap) -> String {
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
            .or_else(|| first("host"))
            .filter(|h| h.parse::<http::uri::Authority>().is_ok());
        match host {
            Some(h) => format!("{proto}://{h}"),
            None => String::new(),
        }
    }
}
