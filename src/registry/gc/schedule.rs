//! The housekeeping `serve` runs in the background: the purge of abandoned
//! uploads at start and periodically, and garbage collection on a
//! schedule. Each run logs what it freed.

use std::time::Duration;

use super::GcOptions;
use crate::registry::Registry;

/// When to do what.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Collect garbage this often (first run one interval after start).
    pub gc_every: Option<Duration>,
    pub gc: GcOptions,
    /// Look for abandoned uploads this often (and once at start).
    pub purge_every: Duration,
    /// Uploads idle longer than this are abandoned.
    pub max_idle: Duration,
}

impl Registry {
    /// Purges abandoned uploads once and logs what it freed.
    pub async fn purge_uploads_logged(&self, max_idle: Duration) {
        match self.purge_uploads(max_idle).await {
            Ok(p) if p.uploads > 0 => tracing::info!(
                uploads = p.uploads,
                bytes = p.bytes,
                max_idle_secs = max_idle.as_secs(),
                "purged {} abandoned upload(s), freed {}",
                p.uploads,
                super::report::human_bytes(p.bytes)
            ),
            Ok(_) => tracing::debug!("no abandoned uploads"),
            Err(e) => tracing::warn!(error = %e, "purging abandoned uploads failed; will retry"),
        }
    }

    /// Runs one collection and logs what it freed (at `info` when it freed
    /// something, else at `debug`).
    pub async fn gc_logged(&self, options: super::GcOptions) {
        match self.gc(options).await {
            Ok(r) if r.skipped.is_some() => {
                tracing::info!("gc: skipped, another instance holds the GC lease")
            }
            Ok(r) if r.total.blobs > 0 || r.manifests_removed() > 0 => tracing::info!(
                blobs = r.total.blobs,
                bytes = r.total.bytes,
                manifests = r.manifests_removed(),
                kept_young = r.kept_young,
                kept_recent = r.kept_recent,
                duration_ms = r.duration_ms,
                "gc: freed {} blob(s), {}",
                r.total.blobs,
                super::report::human_bytes(r.total.bytes)
            ),
            Ok(r) => tracing::debug!(
                kept_young = r.kept_young,
                kept_recent = r.kept_recent,
                "gc: nothing to free"
            ),
            Err(e) => tracing::warn!(error = %e, "gc failed; will retry at the next interval"),
        }
    }

    /// Runs the housekeeping until the task is dropped.
    pub async fn housekeeping(self, s: Schedule) {
        self.purge_uploads_logged(s.max_idle).await;
        let far = Duration::from_secs(365 * 24 * 3600);
        let start = tokio::time::Instant::now();
        let mut purge = tokio::time::interval_at(start + s.purge_every, s.purge_every);
        let gc_every = s.gc_every.unwrap_or(far);
        let mut gc = tokio::time::interval_at(start + gc_every, gc_every);
        purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        gc.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = purge.tick() => self.purge_uploads_logged(s.max_idle).await,
                _ = gc.tick(), if s.gc_every.is_some() => self.gc_logged(s.gc).await,
            }
        }
    }
}
