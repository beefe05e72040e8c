//! The garbage-collection lease on a shared bucket: one instance sweeps at
//! a time.
//!
//! Garage 2.5 ignores `If-None-Match: *` and `If-Match` on `PUT` (it
//! overwrites; `tests/s3_gc_lease.rs::garage_does_not_honour_conditional_puts`
//! checks it), so the lease cannot be a conditional create there, and a
//! store that silently ignores the header cannot be told from one that
//! honours it. Nor may it depend on a write finishing within some time.
//! What it relies on instead is what every S3 store we target gives:
//! read-after-write for `PUT` and `LIST`, and the store's own clock in
//! `last_modified`.
//!
//! Each candidate writes its own claim, `_regproxy/gc-leases/<holder>`
//! (no two instances ever write one key), then lists every claim:
//! - no other live claim: it holds the lease, and marks its claim `held`;
//! - another live claim is `held`, or has a smaller name: it withdraws
//!   (deletes its own claim);
//! - only live claims with larger names: it waits for them to withdraw
//!   (a few seconds at most, then withdraws itself).
//!
//! Two holders at once are impossible: of two claims, the one written
//! later is listed by its writer after the earlier one exists, and a
//! claim is only removed by its own writer. A claim is live until its
//! writer's time to live has passed since its `last_modified`, counted
//! from the lister's own claim's `last_modified`: both times are the
//! store's, so no instance's clock is trusted (the store's nodes must
//! agree within [`SLACK`]). The holder renews by rewriting its claim, and
//! stops using the lease before the time to live has passed on its own
//! monotonic clock (see `registry::gc::lease`). Release deletes only the
//! holder's own claim, never a successor's.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use super::S3Storage;
use crate::oci::digest::Digest;
use crate::registry::storage::{Result, StorageError};

/// Clock granularity and skew between the store's nodes, added to a
/// claim's time to live before another instance treats it as expired.
const SLACK: Duration = Duration::from_secs(2);
/// How often a candidate looks again while a rival with a larger name
/// has not withdrawn yet, and how many times.
const POLL: Duration = Duration::from_millis(200);
const POLLS: usize = 25;
/// The time to live assumed for a claim that cannot be read.
const UNKNOWN_TTL: Duration = Duration::from_secs(3600);

#[derive(Serialize, Deserialize)]
struct Claim {
    holder: String,
    ttl_ms: u64,
    /// Set once the writer holds the lease (a rival then withdraws).
    held: bool,
    /// The blobs its sweep is about to delete (announced before it
    /// deletes; see [`S3Storage::doomed`]).
    #[serde(default)]
    doomed: Vec<String>,
}

/// A claim's key name: the holder with anything but `[A-Za-z0-9._-]` as `_`.
fn claim_name(holder: &str) -> String {
    holder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What a listing says about the other claims.
enum Round {
    Won(Vec<String>),
    Lost(String),
    Wait,
}

impl S3Storage {
    fn claim_key(&self, name: &str) -> Path {
        self.keys.gc_leases().join(name)
    }

    async fn write_claim(
        &self,
        holder: &str,
        ttl: Duration,
        held: bool,
        doomed: Vec<String>,
    ) -> Result<()> {
        let claim = Claim {
            holder: holder.to_string(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            held,
            doomed,
        };
        let body = serde_json::to_vec(&claim).unwrap_or_default();
        self.write(&self.claim_key(&claim_name(holder)), Bytes::from(body))
            .await
    }

    /// Reads every claim and decides.
    async fn round(&self, name: &str) -> Result<Round> {
        let claims = self.list_under(&self.keys.gc_leases()).await?;
        let Some(mine) = claims.iter().find(|(n, _, _)| n == name).map(|c| c.2) else {
            return Ok(Round::Lost("our claim disappeared".into()));
        };
        let (mut stale, mut live) = (Vec::new(), Vec::new());
        for (other, _, written) in claims.iter().filter(|(n, _, _)| n != name) {
            let Some(bytes) = self.read(&self.claim_key(other)).await? else {
                continue; // withdrawn meanwhile
            };
            let claim = serde_json::from_slice::<Claim>(&bytes).ok();
            let ttl = claim
                .as_ref()
                .map_or(UNKNOWN_TTL, |c| Duration::from_millis(c.ttl_ms));
            let expires = *written + ttl + SLACK;
            if mine > expires {
                stale.push(other.clone());
            } else {
                let held = claim.as_ref().is_none_or(|c| c.held);
                let who = claim.map_or_else(|| other.clone(), |c| c.holder);
                live.push((other.clone(), who, held));
            }
        }
        if live.is_empty() {
            return Ok(Round::Won(stale));
        }
        match live.iter().find(|(n, _, held)| *held || n.as_str() < name) {
            Some((_, who, _)) => Ok(Round::Lost(who.clone())),
            None => Ok(Round::Wait),
        }
    }

    pub(super) async fn lease_acquire(&self, holder: &str, ttl: Duration) -> Result<bool> {
        let name = claim_name(holder);
        self.write_claim(holder, ttl, false, Vec::new()).await?;
        let outcome = self.settle(holder, &name, ttl).await;
        if !matches!(outcome, Ok(true)) {
            if let Err(e) = self.delete(&self.claim_key(&name)).await {
                tracing::warn!(error = %e, "withdrawing the GC lease claim failed; it expires by itself");
            }
        }
        outcome
    }

    async fn settle(&self, holder: &str, name: &str, ttl: Duration) -> Result<bool> {
        for _ in 0..POLLS {
            match self.round(name).await? {
                Round::Won(stale) => {
                    self.write_claim(holder, ttl, true, Vec::new()).await?;
                    for old in stale {
                        // A holder that died: its claim is tidied away.
                        tracing::info!(claim = %old, "removing an expired GC lease claim");
                        self.delete(&self.claim_key(&old)).await?;
                    }
                    return Ok(true);
                }
                Round::Lost(other) => {
                    tracing::info!(holder = %other, "another instance holds the GC lease");
                    return Ok(false);
                }
                Round::Wait => tokio::time::sleep(POLL).await,
            }
        }
        tracing::info!("rivals for the GC lease did not step back in time; not collecting now");
        Ok(false)
    }

    /// Rewrites the holder's claim as it is (what it announced stays).
    pub(super) async fn lease_renew(&self, holder: &str, ttl: Duration) -> Result<()> {
        let key = self.claim_key(&claim_name(holder));
        let doomed = match self.read(&key).await? {
            Some(b) => {
                serde_json::from_slice::<Claim>(&b).map_or_else(|_| Vec::new(), |c| c.doomed)
            }
            None => {
                return Err(StorageError::Unavailable(format!(
                    "{}: the GC lease claim of {holder} is gone (taken over as expired)",
                    self.place
                )))
            }
        };
        self.write_claim(holder, ttl, true, doomed).await
    }

    /// Announces the blobs the holder's sweep is about to delete.
    pub(super) async fn lease_announce(
        &self,
        holder: &str,
        ttl: Duration,
        doomed: &[Digest],
    ) -> Result<()> {
        let doomed = doomed.iter().map(Digest::to_string).collect();
        self.write_claim(holder, ttl, true, doomed).await
    }

    /// Which of `wanted` a live collection (on any instance) has announced
    /// it is about to delete. Only when a claim names one of them is the
    /// store's clock read (a probe object's `last_modified`), to tell a
    /// live claim from one whose holder died.
    pub(super) async fn doomed(&self, wanted: &[Digest]) -> Result<Vec<Digest>> {
        let claims = self.list_under(&self.keys.gc_leases()).await?;
        let mut now = None;
        let mut out = Vec::new();
        for (name, _, written) in claims {
            let Some(bytes) = self.read(&self.claim_key(&name)).await? else {
                continue;
            };
            let Ok(claim) = serde_json::from_slice::<Claim>(&bytes) else {
                continue;
            };
            let hit: Vec<Digest> = wanted
                .iter()
                .filter(|d| claim.doomed.iter().any(|x| *x == d.to_string()))
                .cloned()
                .collect();
            if !claim.held || hit.is_empty() {
                continue;
            }
            let now = match now {
                Some(t) => t,
                None => *now.insert(self.store_now().await?),
            };
            if now <= written + Duration::from_millis(claim.ttl_ms) + SLACK {
                out.extend(hit);
            }
        }
        Ok(out)
    }

    /// The store's clock: the `last_modified` of an object written now.
    async fn store_now(&self) -> Result<SystemTime> {
        let key = self.keys.clock(&uuid::Uuid::new_v4().to_string());
        self.write(&key, Bytes::from_static(b"clock\n")).await?;
        let at = self
            .store
            .head(&key)
            .await
            .map(|m| SystemTime::from(m.last_modified))
            .map_err(|e| self.fail(e));
        self.delete(&key).await?;
        at
    }

    pub(super) async fn lease_release(&self, holder: &str) -> Result<()> {
        self.delete(&self.claim_key(&claim_name(holder)))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::claim_name;

    #[test]
    fn claim_names_are_single_safe_segments() {
        assert_eq!(claim_name("host-1/42/ab-cd"), "host-1_42_ab-cd");
        assert_eq!(claim_name("a b%c"), "a_b_c");
    }
}
