//! The purge of abandoned uploads: an upload whose last write and start
//! are both older than the configured age is deleted (its
//! `_uploads/<uuid>/` directory), as registry:2's upload purging does. An
//! upload with a request running on it is left alone.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::registry::storage::Result;
use crate::registry::Registry;

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Purged {
    pub uploads: u64,
    pub bytes: u64,
}

impl Registry {
    /// Deletes uploads idle for longer than `max_idle`.
    pub async fn purge_uploads(&self, max_idle: Duration) -> Result<Purged> {
        let now = SystemTime::now();
        let Some(cutoff) = now.checked_sub(max_idle) else {
            return Ok(Purged::default());
        };
        let storage = self.storage();
        let mut purged = Purged::default();
        for (repo, upload) in storage.list_uploads().await? {
            let last = upload
                .started
                .map_or(upload.last_write, |s| s.max(upload.last_write));
            if last >= cutoff {
                continue;
            }
            // A request on this upload holds its lock: not abandoned.
            let state = self.uploads.entry(upload.id);
            let Ok(_busy) = state.try_lock() else {
                continue;
            };
            if storage.upload_delete(&repo, upload.id).await? {
                purged.uploads += 1;
                purged.bytes += upload.size;
            }
            self.uploads.forget(upload.id);
        }
        Ok(purged)
    }
}
