//! The registry-wide "recently referenced" set that makes garbage
//! collection safe while people push.
//!
//! Every request that makes a blob or manifest needed again records its
//! digest here first: a blob `GET`/`HEAD` (a client deciding it need not
//! upload), an upload's commit, a cross-repository mount, and a manifest
//! `PUT` (the manifest and every descriptor in it). The sweep holds the
//! same lock while it checks a digest and deletes it, so either the request
//! records first and the sweep keeps the blob, or the sweep deletes first
//! and the request then finds the blob missing and asks for it again
//! (`404`, `MANIFEST_BLOB_UNKNOWN`): never a manifest pointing at nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, MutexGuard};

use crate::oci::digest::Digest;

/// Entries are pruned when the set grows past this many digests.
const PRUNE_AT: usize = 100_000;

pub struct Recent {
    touched: Mutex<HashMap<Digest, Instant>>,
    /// How long a touch is remembered at least (the longest grace period
    /// in use).
    retention: Duration,
}

/// The locked set, held by the sweep around each check-and-delete.
pub struct Held<'a>(MutexGuard<'a, HashMap<Digest, Instant>>);

impl Held<'_> {
    /// Whether `d` was referenced at or after `since`.
    pub fn touched_since(&self, d: &Digest, since: Instant) -> bool {
        self.0.get(d).is_some_and(|t| *t >= since)
    }
}

impl Recent {
    pub fn new(retention: Duration) -> Recent {
        Recent {
            touched: Mutex::default(),
            retention,
        }
    }

    /// Records that `digests` are needed now.
    pub async fn touch<'a>(&self, digests: impl IntoIterator<Item = &'a Digest>) {
        let now = Instant::now();
        let mut map = self.touched.lock().await;
        for d in digests {
            map.insert(d.clone(), now);
        }
        if map.len() > PRUNE_AT {
            let keep = self.retention;
            map.retain(|_, t| now.duration_since(*t) <= keep);
        }
    }

    pub async fn hold(&self) -> Held<'_> {
        Held(self.touched.lock().await)
    }

    /// Forgets touches older than `before` (called when a collection starts).
    pub async fn prune(&self, before: Instant) {
        let keep_from = before.min(Instant::now().checked_sub(self.retention).unwrap_or(before));
        self.touched.lock().await.retain(|_, t| *t >= keep_from);
    }
}

impl Default for Recent {
    fn default() -> Self {
        Recent::new(super::DEFAULT_GRACE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn touches_are_seen_from_their_time_on() {
        let r = Recent::new(Duration::from_secs(60));
        let d = Digest::sha256_of(b"x");
        let before = Instant::now();
        assert!(!r.hold().await.touched_since(&d, before));
        r.touch([&d]).await;
        assert!(r.hold().await.touched_since(&d, before));
        let after = Instant::now() + Duration::from_millis(1);
        assert!(!r.hold().await.touched_since(&d, after));
        r.prune(before).await;
        assert!(
            r.hold().await.touched_since(&d, before),
            "kept within retention"
        );
    }
}
