//! One access-log line per request (tracing target `regproxy::access`), the
//! audit records for pushes and deletes (target `regproxy::audit`), and the
//! per-request metrics.
//!
//! A [`Record`] is opened when a request arrives and filled as the pipeline
//! learns more (route, user, action). [`Record::finish`] counts the request
//! and wraps the response body so the line is written when the body is done
//! (or the client went away), with the bytes really sent and the whole
//! duration. Never logged: headers (so no `Authorization`), query strings
//! (the token endpoint's `account`/`scope`), bodies (passwords in token
//! forms).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Response, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::metrics::{self, RouteKind, UploadGuard};
use crate::oci::names::Reference;
use crate::oci::response::{Body, BoxError};
use crate::oci::Route;

/// What is known about one request, logged when its answer is sent.
pub struct Record {
    started: Instant,
    peer: SocketAddr,
    method: Method,
    version: Version,
    path: String,
    kind: RouteKind,
    route: Option<Route>,
    user: Option<String>,
    action: Option<&'static str>,
    status: u16,
    bytes_in: Arc<AtomicU64>,
    bytes_out: u64,
    _upload: Option<UploadGuard>,
}

impl Record {
    pub fn new<B>(req: &http::Request<B>, peer: SocketAddr) -> Record {
        Record {
            started: Instant::now(),
            peer,
            method: req.method().clone(),
            version: req.version(),
            path: req.uri().path().to_string(),
            kind: RouteKind::Other,
            route: None,
            user: None,
            action: None,
            status: 0,
            bytes_in: Arc::new(AtomicU64::new(0)),
            bytes_out: 0,
            _upload: None,
        }
    }

    pub fn set_kind(&mut self, kind: RouteKind) {
        self.kind = kind;
    }

    /// The parsed route (its kind, repository and reference).
    pub fn set_route(&mut self, route: &Route) {
        self.kind = match route {
            Route::Base => RouteKind::Base,
            Route::Catalog => RouteKind::Catalog,
            Route::Tags(_) => RouteKind::Tags,
            Route::Manifest(..) => RouteKind::Manifest,
            Route::Blob(..) => RouteKind::Blob,
            Route::Uploads(_) | Route::Upload(..) => RouteKind::Upload,
            Route::Referrers(..) => RouteKind::Referrers,
        };
        if self.kind == RouteKind::Upload && self.method != Method::GET {
            self._upload = Some(metrics::get().upload_started());
        }
        self.route = Some(route.clone());
    }

    /// Who was let in, and for what.
    pub fn set_access(&mut self, user: Option<&str>, action: Option<&'static str>) {
        self.user = user.map(str::to_string);
        self.action = action;
    }

    /// Wraps a request body so its bytes are counted (log and metrics).
    pub fn count_body<B>(&self, body: B) -> CountedBody<B> {
        CountedBody {
            inner: body,
            count: self.bytes_in.clone(),
        }
    }

    /// Counts bytes of a body read whole elsewhere (the token form).
    pub fn add_bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
        metrics::get().bytes_in(n);
    }

    /// Records the answer: metrics now, the audit record for a push or a
    /// delete now, and the access line when the body has been sent.
    pub fn finish(mut self, resp: Response<Body>) -> Response<Body> {
        self.status = resp.status().as_u16();
        metrics::get().request(self.kind, self.status, self.started.elapsed().as_secs_f64());
        self.audit(&resp);
        resp.map(|body| {
            LoggedBody {
                inner: body,
                record: Some(self),
            }
            .boxed_unsync()
        })
    }

    fn audit(&self, resp: &Response<Body>) {
        let Some(route) = &self.route else { return };
        let user = self.user.as_deref().unwrap_or("");
        let ok = resp.status().is_success();
        match (route, &self.method) {
            (Route::Manifest(repo, reference), &Method::PUT) if ok => {
                let digest = resp
                    .headers()
                    .get("Docker-Content-Digest")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let tag = match reference {
                    Reference::Tag(t) => t.to_string(),
                    Reference::Digest(_) => String::new(),
                };
                tracing::info!(
                    target: "regproxy::audit",
                    event = "push",
                    peer = %self.peer,
                    user,
                    repository = %repo,
                    tag,
                    digest,
                    "manifest pushed"
                );
            }
            (Route::Manifest(repo, reference), &Method::DELETE) if ok => tracing::info!(
                target: "regproxy::audit",
                event = "delete",
                peer = %self.peer,
                user,
                repository = %repo,
                reference = %reference,
                "manifest deleted"
            ),
            (Route::Blob(repo, digest), &Method::DELETE) if ok => tracing::info!(
                target: "regproxy::audit",
                event = "delete",
                peer = %self.peer,
                user,
                repository = %repo,
                reference = %digest,
                "blob deleted"
            ),
            _ => {}
        }
    }

    fn log(&self) {
        let (repository, reference) = match &self.route {
            Some(Route::Manifest(r, reference)) => (r.as_str(), reference.to_string()),
            Some(Route::Blob(r, d)) | Some(Route::Referrers(r, d)) => (r.as_str(), d.to_string()),
            Some(Route::Upload(r, id)) => (r.as_str(), id.to_string()),
            Some(route) => (
                route.repo().map(|r| r.as_str()).unwrap_or(""),
                String::new(),
            ),
            None => ("", String::new()),
        };
        tracing::info!(
            target: "regproxy::access",
            peer = %self.peer,
            user = self.user.as_deref().unwrap_or(""),
            method = %self.method,
            path = %self.path,
            action = self.action.unwrap_or(""),
            repository,
            reference,
            status = self.status,
            bytes_in = self.bytes_in.load(Ordering::Relaxed),
            bytes_out = self.bytes_out,
            ms = self.started.elapsed().as_millis() as u64,
            http = ?self.version,
            "request"
        );
    }
}

/// A request body whose data bytes are counted as they are read.
pub struct CountedBody<B> {
    inner: B,
    count: Arc<AtomicU64>,
}

impl<B> HttpBody for CountedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let n = data.len() as u64;
                self.count.fetch_add(n, Ordering::Relaxed);
                metrics::get().bytes_in(n);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that counts what is sent and writes the access line
/// when it is dropped (sent whole, or abandoned by the client).
struct LoggedBody {
    inner: Body,
    record: Option<Record>,
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let n = data.len() as u64;
                if let Some(r) = self.record.as_mut() {
                    r.bytes_out += n;
                }
                metrics::get().bytes_out(n);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(r) = self.record.take() {
            r.log();
        }
    }
}
