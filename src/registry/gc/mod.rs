//! Garbage collection: mark every blob a linked manifest needs, then sweep
//! the rest; also the purge of abandoned uploads ([`uploads`]) and the
//! storage use per repository ([`usage`]).
//!
//! Safe while people push: a blob is deleted only when no kept manifest
//! needs it, its content is older than the grace period, and no request
//! referenced it since the grace period before the mark began
//! ([`recent::Recent`]). Everything goes through the [`Storage`] trait.

pub(crate) mod doomed;
mod lease;
pub mod mark;
pub mod recent;
mod report;
pub mod schedule;
pub mod uploads;
pub mod usage;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};

use super::storage::{Result, StorageError};
use super::Registry;
use crate::oci::digest::Digest;
use crate::oci::names::RepoName;
pub use report::{human_bytes, Freed, GcReport, RepoFreed};

/// Blobs younger than this are never collected (by default).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// What a collection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// Report only; delete nothing.
    pub dry_run: bool,
    /// Also remove manifests that no tag reaches.
    pub untagged: bool,
    /// Blobs and revisions younger than this are kept.
    pub grace: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            untagged: false,
            grace: DEFAULT_GRACE,
        }
    }
}

/// The repository name a blob is reported under when no repository links it.
const UNLINKED: &str = "(unlinked)";

/// How long the GC lease on shared storage lasts unless renewed (the
/// holder renews every third of it): a collection that dies blocks others
/// no longer than this, nor manifest `PUT`s that need a blob it announced,
/// which wait at most a minute (`gc::doomed`), so it must stay well below
/// that.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// State shared by collections: one at a time, and the last report.
pub struct GcState {
    running: tokio::sync::Mutex<()>,
    last: std::sync::Mutex<Option<GcReport>>,
    /// This process's name on the GC lease (host, pid and a random id).
    holder: String,
    /// How long the lease lasts unless renewed ([`LEASE_TTL`]).
    lease_ttl: std::sync::Mutex<Duration>,
}

impl Default for GcState {
    fn default() -> Self {
        GcState {
            running: tokio::sync::Mutex::default(),
            last: std::sync::Mutex::default(),
            holder: format!(
                "{}/{}/{}",
                gethostname::gethostname().to_string_lossy(),
                std::process::id(),
                uuid::Uuid::new_v4()
            ),
            lease_ttl: std::sync::Mutex::new(LEASE_TTL),
        }
    }
}

impl Registry {
    /// Runs one garbage collection (waiting for one already running) and
    /// remembers its report for [`Registry::last_gc_report`].
    pub async fn gc(&self, options: GcOptions) -> Result<GcReport> {
        let _one = self.gc.running.lock().await;
        self.collect_and_keep(options).await
    }

    /// Like [`Registry::gc`], but `None` at once when a collection is
    /// already running (the admin endpoint answers 409 then).
    pub async fn try_gc(&self, options: GcOptions) -> Option<Result<GcReport>> {
        let _one = self.gc.running.try_lock().ok()?;
        Some(self.collect_and_keep(options).await)
    }

    /// Runs a collection only if the last report is the dry run that
    /// started at `confirms` (RFC 3339), checked while no other collection
    /// runs: one dry run, looked at, confirms one run. `Ok(None)`: not
    /// confirmed, nothing was done.
    pub async fn gc_confirmed(
        &self,
        options: GcOptions,
        confirms: &str,
    ) -> Result<Option<GcReport>> {
        let _one = self.gc.running.lock().await;
        let confirmed = (self.last_gc_report()).is_some_and(|r| r.dry_run && r.started == confirms);
        if !confirmed {
            return Ok(None);
        }
        self.collect_and_keep(options).await.map(Some)
    }

    async fn collect_and_keep(&self, options: GcOptions) -> Result<GcReport> {
        // On shared storage, one instance sweeps at a time: the others
        // report that they left it to the holder of the lease.
        let storage = self.storage().clone();
        let lease = if options.dry_run {
            None
        } else {
            match lease::Lease::take(storage, &self.gc.holder, self.gc_lease_ttl()).await? {
                Some(l) => Some(l),
                None => {
                    let mut report = GcReport::new(options, SystemTime::now());
                    report.skipped = Some(
                        "another instance holds the GC lease (it is collecting now); nothing was done here"
                            .into(),
                    );
                    return Ok(report);
                }
            }
        };
        let result = self.collect(options, lease.as_ref()).await;
        if let Some(l) = lease {
            l.release().await;
        }
        let report = result?;
        *self.gc.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(report.clone());
        Ok(report)
    }

    /// Sets how long the GC lease on shared storage lasts unless renewed
    /// (default [`LEASE_TTL`]; tests shorten it).
    pub fn set_gc_lease_ttl(&self, ttl: Duration) {
        *self.gc.lease_ttl.lock().unwrap_or_else(|p| p.into_inner()) = ttl;
    }

    fn gc_lease_ttl(&self) -> Duration {
        *self.gc.lease_ttl.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The report of the last collection this process ran, if any.
    pub fn last_gc_report(&self) -> Option<GcReport> {
        self.gc
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn collect(&self, options: GcOptions, lease: Option<&lease::Lease>) -> Result<GcReport> {
        // Before every delete: still ours (a dry run deletes nothing).
        let still_ours = || lease.map_or(Ok(()), lease::Lease::check);
        let started = SystemTime::now();
        let began = Instant::now();
        // Touched at or after `since` (instant) or written after `young`
        // (mtime): kept.
        let since = began.checked_sub(options.grace).unwrap_or(began);
        let young = started.checked_sub(options.grace).unwrap_or(started);
        self.recent.prune(since).await;
        let storage = self.storage().clone();

        // ---- mark ----
        let mut marks = Vec::new();
        for name in storage.list_repositories().await? {
            // What a repository we cannot read keeps is unknown: stop.
            let repo = name.parse::<RepoName>().map_err(|e| {
                StorageError::Corrupt(format!(
                    "repository directory {name:?} is not a valid repository name ({e}); \
                     rename or remove it before collecting garbage"
                ))
            })?;
            marks.push(mark::mark_repo(&storage, repo, options.untagged, young).await?);
        }
        let mut needed: BTreeSet<Digest> = BTreeSet::new();
        let mut owners: HashMap<Digest, BTreeSet<String>> = HashMap::new();
        for m in &mut marks {
            needed.extend(m.needed.iter().cloned());
            for d in m.layers.iter().chain(m.unreached.iter()) {
                owners
                    .entry(d.clone())
                    .or_default()
                    .insert(m.repo.to_string());
            }
        }
        let mut report = GcReport::new(options, started);

        // ---- what goes ----
        let mut links: HashMap<Digest, Vec<RepoName>> = HashMap::new();
        for m in &marks {
            for d in &m.layers {
                links.entry(d.clone()).or_default().push(m.repo.clone());
            }
        }
        let mut candidates = Vec::new();
        for blob in storage.list_blobs().await? {
            if needed.contains(&blob.digest) {
                continue;
            }
            if blob.modified >= young {
                report.kept_young += 1;
                continue;
            }
            candidates.push(blob);
        }
        let untagged: Vec<Digest> = marks.iter().flat_map(|m| m.unreached.clone()).collect();
        let others_push =
            storage.shared() && !options.dry_run && !(candidates.is_empty() && untagged.is_empty());
        if let (Some(l), true) = (lease, others_push) {
            // Other instances take pushes meanwhile: first say what is
            // about to go, blobs and untagged manifests (a manifest linked
            // from now on that is or needs one waits for this sweep), then
            // keep what manifests linked since the mark need.
            let doomed: Vec<Digest> = candidates
                .iter()
                .map(|b| b.digest.clone())
                .chain(untagged)
                .collect();
            l.announce(&doomed).await?;
            let late = mark::linked_since(&storage, &mut marks, &mut needed).await?;
            if late > 0 {
                tracing::info!(
                    manifests = late,
                    "gc: manifests linked during the collection are kept"
                );
            }
        }

        // ---- untagged manifests ----
        for m in &mut marks {
            let unreached = std::mem::take(&mut m.unreached);
            if !options.dry_run && !unreached.is_empty() {
                // Tagged since the mark (through another instance, before
                // it could see the announcement): kept.
                mark::tagged_since(&storage, m, &mut needed).await?;
            }
            for d in unreached {
                let removed = if options.dry_run {
                    true
                } else if m.kept.contains(&d) {
                    false
                } else {
                    let held = self.recent.hold().await;
                    if held.touched_since(&d, since) {
                        false
                    } else {
                        still_ours()?;
                        self.unlink_revision(&m.repo, &d, &m.docs).await?;
                        true
                    }
                };
                if removed {
                    report.repo(m.repo.as_str()).manifests += 1;
                } else {
                    // Pushed or tagged again while we looked: keep all it needs.
                    let mut kept = BTreeSet::new();
                    mark::close_over(&storage, &mut m.docs, &d, &mut kept, &mut needed).await?;
                }
            }
        }

        // ---- sweep ----
        for blob in candidates {
            if needed.contains(&blob.digest) {
                report.kept_recent += 1;
                continue;
            }
            if !options.dry_run {
                let held = self.recent.hold().await;
                if held.touched_since(&blob.digest, since) {
                    report.kept_recent += 1;
                    continue;
                }
                still_ours()?;
                storage.delete_blob(&blob.digest).await?;
                for repo in links.get(&blob.digest).into_iter().flatten() {
                    storage.unlink_layer(repo, &blob.digest).await?;
                }
                drop(held);
            }
            report.freed(&blob.digest, blob.size, owners.get(&blob.digest));
        }
        if !options.dry_run && (report.total.blobs > 0 || report.manifests_removed() > 0) {
            self.manifests.clear();
        }
        report.finish(began.elapsed());
        Ok(report)
    }

    /// Removes an untagged manifest revision and its referrer entry.
    async fn unlink_revision(
        &self,
        repo: &RepoName,
        d: &Digest,
        docs: &HashMap<Digest, mark::Refs>,
    ) -> Result<()> {
        let storage = self.storage();
        if let Some(s) = docs.get(d).and_then(|r| r.subject.as_ref()) {
            storage.remove_referrer(repo, s, d).await?;
        }
        storage.unlink_manifest(repo, d).await?;
        self.manifests.invalidate(repo);
        Ok(())
    }
}

impl GcReport {
    fn repo(&mut self, name: &str) -> &mut RepoFreed {
        self.per_repo
            .entry(name.to_string())
            .or_insert_with(|| RepoFreed {
                repository: name.to_string(),
                ..RepoFreed::default()
            })
    }

    fn freed(&mut self, _d: &Digest, size: u64, owners: Option<&BTreeSet<String>>) {
        self.total.blobs += 1;
        self.total.bytes += size;
        match owners.filter(|o| !o.is_empty()) {
            Some(o) => {
                for r in o {
                    let e = self.repo(r);
                    e.blobs += 1;
                    e.bytes += size;
                }
            }
            None => {
                let e = self.repo(UNLINKED);
                e.blobs += 1;
                e.bytes += size;
            }
        }
    }
}

/// Keeps `BTreeMap` in scope for the report module.
pub(crate) type PerRepo = BTreeMap<String, RepoFreed>;
