//! The GC lease as a collection holds it: taken before the mark, renewed
//! in the background every third of its time to live, and checked before
//! every delete; before the sweep deletes, it announces there what it will
//! delete, for instances linking manifests meanwhile (`gc::doomed`). If a
//! renewal fails, or does not finish in time, the lease counts as lost and
//! the collection stops before deleting anything more.
//!
//! The holder judges its lease by its own monotonic clock, counted from
//! before it asked for the lease (or the renewal): it uses it for three
//! quarters of the time to live at most. Another instance takes it over
//! only after the whole time to live (and some slack) has passed on the
//! store's clock since the holder's last write, so the two never overlap
//! as long as the clocks run at about the same rate. Storage used by one
//! process (the filesystem) needs no lease: it is always valid.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::oci::digest::Digest;
use crate::registry::storage::{Result, Storage, StorageError};

/// The part of the time to live the holder uses before it must renew.
fn usable(ttl: Duration) -> Duration {
    ttl - ttl / 4
}

struct State {
    valid_until: Instant,
    lost: Option<String>,
}

/// A lease held by this process.
pub(super) struct Lease {
    storage: Arc<dyn Storage>,
    holder: String,
    ttl: Duration,
    state: Arc<Mutex<State>>,
    renewer: Option<JoinHandle<()>>,
}

impl Lease {
    /// Takes the lease; `None` when another instance holds it.
    pub(super) async fn take(
        storage: Arc<dyn Storage>,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let asked = Instant::now();
        if !storage.gc_lease_acquire(holder, ttl).await? {
            return Ok(None);
        }
        let shared = storage.shared();
        let far = Duration::from_secs(100 * 365 * 24 * 3600);
        let state = Arc::new(Mutex::new(State {
            valid_until: asked + if shared { usable(ttl) } else { far },
            lost: None,
        }));
        let renewer = shared.then(|| {
            tokio::spawn(renew(
                storage.clone(),
                holder.to_string(),
                ttl,
                state.clone(),
            ))
        });
        Ok(Some(Lease {
            storage,
            holder: holder.to_string(),
            ttl,
            state,
            renewer,
        }))
    }

    /// Ok while the lease is still ours; call before every delete.
    pub(super) fn check(&self) -> Result<()> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let why = match &s.lost {
            Some(why) => why.clone(),
            None if Instant::now() >= s.valid_until => "it was not renewed in time".to_string(),
            None => return Ok(()),
        };
        Err(StorageError::Unavailable(format!(
            "the GC lease was lost ({why}); the collection stopped before deleting anything more; \
             hint: check that the store answers (another instance may collect meanwhile); \
             the next scheduled collection tries again"
        )))
    }

    /// Tells other instances which blobs the sweep is about to delete
    /// (see `Storage::gc_lease_announce`).
    pub(super) async fn announce(&self, doomed: &[Digest]) -> Result<()> {
        self.check()?;
        self.storage
            .gc_lease_announce(&self.holder, self.ttl, doomed)
            .await
    }

    /// Stops renewing and gives the lease back (only ours).
    pub(super) async fn release(mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        if let Err(e) = self.storage.gc_lease_release(&self.holder).await {
            tracing::warn!(error = %e, "giving back the GC lease failed; it expires by itself");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}

/// Renews every third of the time to live until the lease is lost (or the
/// task is aborted by [`Lease::release`]).
async fn renew(storage: Arc<dyn Storage>, holder: String, ttl: Duration, state: Arc<Mutex<State>>) {
    let every = (ttl / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let asked = Instant::now();
        let until = state.lock().unwrap_or_else(|p| p.into_inner()).valid_until;
        let lost = if asked >= until {
            Some("it was not renewed in time".to_string())
        } else {
            match storage.gc_lease_renew(&holder, ttl).await {
                Ok(()) if Instant::now() < until => None,
                Ok(()) => Some("its renewal finished too late".to_string()),
                Err(e) => Some(format!("renewing it failed: {e}")),
            }
        };
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        match lost {
            None => s.valid_until = asked + usable(ttl),
            Some(why) => {
                tracing::warn!(reason = %why, "gc: lost the GC lease");
                s.lost = Some(why);
                return;
            }
        }
    }
}
