//! The garbage-collection lease: one small object, `_regproxy/gc-lease`,
//! naming the instance that sweeps and until when. S3-compatible stores do
//! not all offer a conditional create (Garage does not), so the lease is
//! taken by write-then-verify: an instance that finds no live lease writes
//! its own, waits [`SETTLE`], and reads it back; of instances that raced,
//! only the last writer reads its own name, and the others step back. A
//! lease past its expiry is free, so a sweeper that died holds it no longer
//! than its time to live.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::S3Storage;
use crate::registry::storage::Result;

/// How long a writer waits before reading the lease back: longer than the
/// gap between two instances' writes in a race (both read "free" first).
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Serialize, Deserialize)]
struct Lease {
    holder: String,
    /// Seconds since the Unix epoch.
    expires: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl S3Storage {
    async fn read_lease(&self) -> Result<Option<Lease>> {
        Ok(self
            .read(&self.keys.gc_lease())
            .await?
            .and_then(|b| serde_json::from_slice::<Lease>(&b).ok()))
    }

    pub(super) async fn lease_acquire(&self, holder: &str, ttl: Duration) -> Result<bool> {
        if let Some(l) = self.read_lease().await? {
            if l.holder != holder && l.expires > now_secs() {
                tracing::info!(holder = %l.holder, "another instance holds the GC lease");
                return Ok(false);
            }
        }
        let lease = Lease {
            holder: holder.to_string(),
            expires: now_secs() + ttl.as_secs().max(1),
        };
        let body = serde_json::to_vec(&lease).unwrap_or_default();
        self.write(&self.keys.gc_lease(), Bytes::from(body)).await?;
        tokio::time::sleep(SETTLE).await;
        Ok(self.read_lease().await?.is_some_and(|l| l.holder == holder))
    }

    pub(super) async fn lease_release(&self, holder: &str) -> Result<()> {
        if self.read_lease().await?.is_some_and(|l| l.holder == holder) {
            self.delete(&self.keys.gc_lease()).await?;
        }
        Ok(())
    }
}
