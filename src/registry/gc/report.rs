//! What a garbage collection freed (or would free, in a dry run): blobs and
//! bytes per repository and in total, as JSON for the admin endpoint and
//! as text for `regproxy gc`.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{GcOptions, PerRepo};

/// Blobs and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Freed {
    pub blobs: u64,
    pub bytes: u64,
}

/// What was freed in one repository. A blob linked in several repositories
/// counts in each of them, and once in the total.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepoFreed {
    pub repository: String,
    pub blobs: u64,
    pub bytes: u64,
    /// Untagged manifests removed (with `untagged`).
    pub manifests: u64,
}

/// The outcome of one collection.
#[derive(Debug, Clone, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub untagged: bool,
    pub grace_secs: u64,
    /// When it started (RFC 3339, UTC).
    pub started: String,
    pub duration_ms: u64,
    /// Sorted by name.
    pub repositories: Vec<RepoFreed>,
    pub total: Freed,
    /// Unreferenced blobs kept because they are younger than the grace period.
    pub kept_young: u64,
    /// Unreferenced blobs kept because a request referenced them meanwhile.
    pub kept_recent: u64,
    /// Why nothing was collected, when another instance holds the GC lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    #[serde(skip)]
    pub(super) per_repo: PerRepo,
}

impl GcReport {
    pub(super) fn new(options: GcOptions, started: SystemTime) -> GcReport {
        let started = time::OffsetDateTime::from(started)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        GcReport {
            dry_run: options.dry_run,
            untagged: options.untagged,
            grace_secs: options.grace.as_secs(),
            started,
            duration_ms: 0,
            repositories: Vec::new(),
            total: Freed::default(),
            kept_young: 0,
            kept_recent: 0,
            skipped: None,
            per_repo: PerRepo::new(),
        }
    }

    pub(super) fn finish(&mut self, took: Duration) {
        self.duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self.repositories = self.per_repo.values().cloned().collect();
    }

    /// Untagged manifests removed, in all repositories.
    pub fn manifests_removed(&self) -> u64 {
        self.per_repo.values().map(|r| r.manifests).sum()
    }
}

/// `1.5 MiB`: bytes in binary units, one decimal.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl fmt::Display for GcReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(why) = &self.skipped {
            return writeln!(f, "skipped: {why}");
        }
        let verb = if self.dry_run { "would free" } else { "freed" };
        for r in &self.repositories {
            write!(
                f,
                "{}: {verb} {} blob(s), {}",
                r.repository,
                r.blobs,
                human_bytes(r.bytes)
            )?;
            if r.manifests > 0 {
                let what = if self.dry_run { "to remove" } else { "removed" };
                write!(f, "; {} untagged manifest(s) {what}", r.manifests)?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "total: {verb} {} blob(s), {} ({} bytes)",
            self.total.blobs,
            human_bytes(self.total.bytes),
            self.total.bytes
        )?;
        if self.kept_young + self.kept_recent > 0 {
            writeln!(
                f,
                "kept {} unreferenced blob(s) younger than the grace period ({} s) and {} referenced during the collection",
                self.kept_young, self.grace_secs, self.kept_recent
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }
}
