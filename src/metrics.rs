//! The process's Prometheus metrics: one registry of counters, gauges and
//! histograms that every layer records into (the proxy per request, auth per
//! login, the credential cache per lookup), rendered as Prometheus text by
//! the admin listener's `/metrics`.
//!
//! Recording is a few atomic operations (plus a read lock on a label map for
//! labelled families), so it stays cheap on the hot path. The metrics live in
//! one process-wide value ([`get`]), as a login backend has no other handle
//! to the front that serves it.

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// What kind of endpoint a request went to (a bounded label set: never a
/// repository name or a path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    Base,
    Catalog,
    Tags,
    Manifest,
    Blob,
    Upload,
    Referrers,
    Token,
    /// The web UI's pages.
    Ui,
    Other,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Base => "base",
            RouteKind::Catalog => "catalog",
            RouteKind::Tags => "tags",
            RouteKind::Manifest => "manifest",
            RouteKind::Blob => "blob",
            RouteKind::Upload => "upload",
            RouteKind::Referrers => "referrers",
            RouteKind::Token => "token",
            RouteKind::Ui => "ui",
            RouteKind::Other => "other",
        }
    }
}

/// A login backend, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthBackend {
    Htpasswd,
    Ldap,
    Token,
}

/// How a login (or a token check) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthOutcome {
    Success,
    Failure,
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AuthLabels {
    backend: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CacheLabel {
    result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric regproxy exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabel, Histogram, fn() -> Histogram>,
    bytes_in: Counter,
    bytes_out: Counter,
    active_uploads: Gauge,
    auth: Family<AuthLabels, Counter>,
    credential_cache: Family<CacheLabel, Counter>,
    storage_bytes: Gauge<u64, AtomicU64>,
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("regproxy");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let bytes_in = Counter::default();
        let bytes_out = Counter::default();
        let active_uploads = Gauge::default();
        let auth = Family::<AuthLabels, Counter>::default();
        let credential_cache = Family::<CacheLabel, Counter>::default();
        let storage_bytes = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route kind and status code",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response head, by route kind",
            latency.clone(),
        );
        registry.register(
            "http_request_body_bytes",
            "Bytes received in request bodies",
            bytes_in.clone(),
        );
        registry.register(
            "http_response_body_bytes",
            "Bytes sent in response bodies",
            bytes_out.clone(),
        );
        registry.register(
            "active_uploads",
            "Upload requests (PATCH/PUT/POST of blob data) in progress",
            active_uploads.clone(),
        );
        registry.register(
            "auth_attempts",
            "Logins and token checks, by backend and outcome",
            auth.clone(),
        );
        registry.register(
            "credential_cache_lookups",
            "Credential-cache lookups for Basic logins (hit or miss)",
            credential_cache.clone(),
        );
        registry.register(
            "storage_bytes",
            "Bytes in the blob store (refreshed at most once a minute, when scraped)",
            storage_bytes.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            bytes_in,
            bytes_out,
            active_uploads,
            auth,
            credential_cache,
            storage_bytes,
        }
    }

    /// One answered request: its route kind, status and time to the
    /// response head.
    pub fn request(&self, kind: RouteKind, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: kind.as_str(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabel {
                route: kind.as_str(),
            })
            .observe(seconds);
    }

    pub fn bytes_in(&self, n: u64) {
        self.bytes_in.inc_by(n);
    }

    pub fn bytes_out(&self, n: u64) {
        self.bytes_out.inc_by(n);
    }

    /// Counts an upload request in progress until the guard is dropped.
    pub fn upload_started(&'static self) -> UploadGuard {
        self.active_uploads.inc();
        UploadGuard(self)
    }

    pub fn auth(&self, backend: AuthBackend, outcome: AuthOutcome) {
        let backend = match backend {
            AuthBackend::Htpasswd => "htpasswd",
            AuthBackend::Ldap => "ldap",
            AuthBackend::Token => "token",
        };
        let outcome = match outcome {
            AuthOutcome::Success => "success",
            AuthOutcome::Failure => "failure",
            AuthOutcome::Unavailable => "unavailable",
        };
        self.auth
            .get_or_create(&AuthLabels { backend, outcome })
            .inc();
    }

    pub fn credential_cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.credential_cache
            .get_or_create(&CacheLabel { result })
            .inc();
    }

    pub fn set_storage_bytes(&self, n: u64) {
        self.storage_bytes.set(n);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Decrements the active-uploads gauge when dropped (also when the client
/// goes away mid-upload).
pub struct UploadGuard(&'static Metrics);

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.0.active_uploads.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_counters_and_histograms() {
        let m = Metrics::new();
        m.request(RouteKind::Blob, 200, 0.01);
        m.auth(AuthBackend::Ldap, AuthOutcome::Unavailable);
        m.credential_cache(true);
        let text = m.render();
        assert!(
            text.contains(r#"regproxy_http_requests_total{route="blob",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"regproxy_http_request_duration_seconds_bucket{le="0.016",route="blob"} 1"#
            ) || text.contains(r#"route="blob",le="0.016""#),
            "{text}"
        );
        assert!(text
            .contains(r#"regproxy_auth_attempts_total{backend="ldap",outcome="unavailable"} 1"#));
        assert!(text.contains(r#"regproxy_credential_cache_lookups_total{result="hit"} 1"#));
        assert!(text.ends_with("# EOF\n"));
    }
}
