//! The admin listener (default 127.0.0.1:5001, never the public port):
//! `/healthz` (the process answers), `/readyz` (storage writable, the LDAP
//! directory reachable when configured), `/metrics` (Prometheus text) and
//! `/gc` (garbage collection on request, [`super::admin_gc`]).
//!
//! Plain HTTP/1.1, no authentication: bind it to loopback or a management
//! network only.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use crate::auth::Authorizer;
use crate::oci::response::{self, Body};
use crate::registry::gc::GcOptions;
use crate::registry::Registry;

/// How long the blob-store size is reused before it is walked again.
const STORAGE_REFRESH: Duration = Duration::from_secs(60);
/// The longest a readiness check may take in total.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin endpoints look at.
pub struct Admin {
    /// The filesystem storage's root; `None` for an object store.
    storage_root: Option<PathBuf>,
    authorizer: Authorizer,
    registry: Registry,
    /// The `gc:` settings a `POST /gc` starts from.
    gc_defaults: GcOptions,
    /// When the blob-store size was last measured.
    measured: Mutex<Option<Instant>>,
    /// Set when a stop has begun: `/readyz` then answers 503.
    stopping: AtomicBool,
}

impl Admin {
    pub fn new(
        storage_root: Option<PathBuf>,
        authorizer: Authorizer,
        registry: Registry,
        gc_defaults: GcOptions,
    ) -> Admin {
        Admin {
            storage_root,
            authorizer,
            registry,
            gc_defaults,
            measured: Mutex::new(None),
            stopping: AtomicBool::new(false),
        }
    }

    /// A stop has begun: tell load balancers to send no more requests.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        if req.uri().path() == "/gc" {
            let (method, query) = (req.method(), req.uri().query());
            return super::admin_gc::handle(&self.registry, self.gc_defaults, method, query).await;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "the admin endpoints answer GET (POST only /gc)\n".into(),
            );
            r.headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" => self.readyz().await,
            "/metrics" => {
                self.refresh_storage_bytes().await;
                let mut r = text(StatusCode::OK, crate::metrics::get().render());
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                r
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found; the admin listener serves /healthz, /readyz, /metrics and /gc\n".into(),
            ),
        }
    }

    /// 200 `{"ready":true,...}`, or 503 naming each check that failed.
    async fn readyz(&self) -> Response<Body> {
        let storage = match self.storage_root.clone() {
            Some(root) => tokio::task::spawn_blocking(move || probe_storage(&root))
                .await
                .unwrap_or_else(|e| Err(format!("the storage check did not finish: {e}"))),
            None => {
                match tokio::time::timeout(READY_TIMEOUT, self.registry.storage().probe()).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!(
                        "the storage check did not finish within {} s",
                        READY_TIMEOUT.as_secs()
                    )),
                }
            }
        };
        let ldap = match tokio::time::timeout(READY_TIMEOUT, self.authorizer.ldap_probe()).await {
            Ok(r) => r,
            Err(_) => Some(Err(format!(
                "the LDAP check did not finish within {} s",
                READY_TIMEOUT.as_secs()
            ))),
        };
        let mut checks = serde_json::Map::new();
        let mut failed = Vec::new();
        let mut put = |name: &str, r: &Result<(), String>| {
            let v = match r {
                Ok(()) => serde_json::json!({"ok": true}),
                Err(e) => {
                    failed.push(name.to_string());
                    serde_json::json!({"ok": false, "error": e})
                }
            };
            checks.insert(name.to_string(), v);
        };
        if self.stopping.load(Ordering::Relaxed) {
            put(
                "shutdown",
                &Err("the server is stopping; requests in flight are finishing".into()),
            );
        }
        put("storage", &storage);
        if let Some(l) = &ldap {
            put("ldap", l);
        }
        if !failed.is_empty() {
            tracing::warn!(not_ready = ?failed, "readiness check failed");
        }
        let body = serde_json::json!({
            "ready": failed.is_empty(),
            "not_ready": failed,
            "checks": checks,
        });
        let status = if body["ready"] == true {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        response::json(status, &body)
    }

    /// Walks the blob store (off the reactor) if the last walk is older
    /// than [`STORAGE_REFRESH`].
    async fn refresh_storage_bytes(&self) {
        let mut measured = self.measured.lock().await;
        if measured.is_some_and(|t| t.elapsed() < STORAGE_REFRESH) {
            return;
        }
        let Some(root) = &self.storage_root else {
            // An object store is not walked for a gauge (it costs requests).
            return;
        };
        let blobs = root.join("docker/registry/v2/blobs");
        if let Ok(bytes) = tokio::task::spawn_blocking(move || dir_size(&blobs)).await {
            crate::metrics::get().set_storage_bytes(bytes);
        }
        *measured = Some(Instant::now());
    }
}

/// Writes, syncs and removes a small file in the storage's temp area.
fn probe_storage(root: &Path) -> Result<(), String> {
    let tmp = root.join("docker/registry/v2/_regproxy_tmp");
    let attempt = || -> std::io::Result<()> {
        let mut f = tempfile::Builder::new()
            .prefix("readyz-")
            .tempfile_in(&tmp)?;
        f.write_all(b"regproxy readiness probe\n")?;
        f.as_file().sync_all()?;
        f.close()
    };
    attempt().map_err(|e| format!("cannot write to {}: {e}", tmp.display()))
}

/// The total size of the regular files under `dir` (0 if it is missing).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut r = response::status(status);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, body.len().into());
    *r.body_mut() = response::full(body);
    r
}

/// Serves the admin endpoints on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let admin = admin.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let admin = admin.clone();
                        async move { Ok::<_, Infallible>(admin.handle(req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "admin connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_probe_reports_an_unwritable_dir() {
        let d = tempfile::tempdir().unwrap();
        let e = probe_storage(d.path()).unwrap_err();
        assert!(e.contains("_regproxy_tmp"), "{e}");
        std::fs::create_dir_all(d.path().join("docker/registry/v2/_regproxy_tmp")).unwrap();
        probe_storage(d.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(d.path().join("docker/registry/v2/_regproxy_tmp"))
                .unwrap()
                .count(),
            0
        );
    }
}
