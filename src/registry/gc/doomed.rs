//! The other half of a sweep on shared storage: a manifest linked through
//! one instance while another instance's collection sweeps.
//!
//! The sweeping instance announces the blobs and the untagged manifests it
//! is about to delete, then looks for manifests linked since its mark and
//! keeps what they need (see `gc::collect`). A manifest `PUT` links its
//! revision first, then asks whether a live collection announced the
//! manifest itself or anything it needs: if none did, a sweep either has
//! not announced yet (and will see the link) or is not running. If one
//! did, the sweep may or may not have seen the link, so the `PUT` waits
//! for that sweep to end, then stores and links the manifest again (it
//! has its bytes: an untagged manifest the sweep removed comes back) and
//! checks that its blobs and child manifests are still there; if one is
//! gone, the revision is unlinked again and the client told
//! `MANIFEST_BLOB_UNKNOWN` (it uploads it again). No tag is set before
//! this check, so none can point at a manifest with missing content.

use std::time::Duration;

use bytes::Bytes;

use super::mark::Refs;
use crate::oci::digest::Digest;
use crate::oci::names::RepoName;
use crate::oci::OciError;
use crate::registry::error::RegistryError;
use crate::registry::storage::StorageError;
use crate::registry::Registry;

/// How often, and how many times, a `PUT` looks again while a sweep on
/// another instance holds blobs its manifest needs.
const POLL: Duration = Duration::from_millis(500);
const POLLS: usize = 120;

/// Links revision `digest` (content `bytes`, referencing `refs`) in
/// `repo`, then waits out any sweep that announced it or anything it
/// references ([`wait_out_sweeps`]), in a task of its own: a client that
/// gives up meanwhile (a proxy's read timeout, Ctrl-C) drops its request,
/// and must not leave the revision linked unchecked while the sweep
/// deletes what it needs.
pub(crate) async fn link_checked(
    reg: &Registry,
    repo: &RepoName,
    digest: &Digest,
    bytes: Bytes,
    refs: Refs,
) -> Result<(), RegistryError> {
    let (reg, repo, digest) = (reg.clone(), repo.clone(), digest.clone());
    let task = tokio::spawn(async move {
        reg.storage().link_manifest(&repo, &digest).await?;
        wait_out_sweeps(&reg, &repo, &digest, &bytes, &refs).await
    });
    task.await.map_err(|e| {
        StorageError::Unavailable(format!(
            "linking the manifest stopped: {e}; hint: push it again"
        ))
    })?
}

/// Waits out a sweep that announced `digest` (just linked in `repo`) or
/// anything it references; then stores and links it again from `bytes`
/// (the sweep may have removed it as untagged), and unlinks and refuses
/// it if a blob or child manifest it needs is gone.
async fn wait_out_sweeps(
    reg: &Registry,
    repo: &RepoName,
    digest: &Digest,
    bytes: &Bytes,
    refs: &Refs,
) -> Result<(), RegistryError> {
    let storage = reg.storage();
    let needs: Vec<Digest> = std::iter::once(digest)
        .chain(&refs.blobs)
        .chain(&refs.children)
        .cloned()
        .collect();
    if !storage.shared() || storage.gc_doomed(&needs).await?.is_empty() {
        return Ok(());
    }
    tracing::info!(%repo, %digest, "a collection on another instance is sweeping this manifest or blobs it needs; waiting for it");
    for _ in 0..POLLS {
        tokio::time::sleep(POLL).await;
        if !storage.gc_doomed(&needs).await?.is_empty() {
            continue;
        }
        if storage.blob_size(digest).await?.is_none() {
            storage.write_small_blob(digest, bytes.clone()).await?;
        }
        storage.link_manifest(repo, digest).await?;
        for d in &refs.blobs {
            if storage.blob_size(d).await?.is_none() {
                storage.unlink_manifest(repo, digest).await?;
                return Err(OciError::ManifestBlobUnknown(d.clone()).into());
            }
        }
        for c in &refs.children {
            if storage.blob_size(c).await?.is_none() || !storage.manifest_linked(repo, c).await? {
                storage.unlink_manifest(repo, digest).await?;
                return Err(OciError::ManifestBlobUnknown(c.clone()).into());
            }
        }
        return Ok(());
    }
    storage.unlink_manifest(repo, digest).await?;
    Err(StorageError::Unavailable(format!(
        "a garbage collection on another instance is still deleting blobs manifest {digest} needs \
         after {}s; hint: push again once it is done",
        (POLL * POLLS as u32).as_secs()
    ))
    .into())
}
