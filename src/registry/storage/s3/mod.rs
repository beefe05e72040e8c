//! Storage in an S3-compatible object store (AWS S3, Garage, MinIO, Ceph
//! RGW...), through the `object_store` crate: the same keys as the
//! filesystem backend ([`keys`]) through a client built in [`client`],
//! uploads as one object per request body with their state in the bucket
//! ([`uploads`], [`chunks`]) streamed in parts ([`part_writer`]), listings
//! for GC and the catalog ([`listing`]), tags ([`tags`]) and the GC lease
//! ([`lease`]).
//!
//! Several regproxy instances may share a bucket: nothing about an upload
//! or a tag lives only in one process. Every request to the store has a
//! connect timeout and a read timeout, and a bounded number of retries; a
//! store that is down, slow, missing its bucket or refusing the key becomes
//! [`StorageError::Unavailable`] (503 `UNAVAILABLE` to the client, the cause
//! in the log), never a hung request.

mod chunks;
mod client;
mod keys;
mod lease;
mod listing;
mod objects;
mod part_size;
mod part_writer;
mod tags;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore};

use super::{
    Appended, BlobInfo, BlobReader, ByteRange, ByteStream, Result, RevisionInfo, Storage,
    StorageError, UploadInfo,
};
use crate::oci::digest::{Algorithm, Digest, Hasher};
use crate::oci::names::{RepoName, Tag, UploadId};
use client::REDIRECT_LIFETIME;
pub use client::{S3Key, S3Target};
use keys::Keys;
pub use objects::hint_for;
pub use part_size::PartLimits;

/// The S3 backend.
#[derive(Clone)]
pub struct S3Storage {
    store: Arc<AmazonS3>,
    keys: Keys,
    /// `bucket at endpoint`, for error messages.
    place: Arc<str>,
    /// Signs download URLs for the address clients use, if redirects are on.
    signer: Option<Arc<AmazonS3>>,
    /// What one multipart object may have ([`part_size::S3_LIMITS`]).
    part_limits: PartLimits,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Storage({})", self.place)
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        self.size_of(&self.keys.blob_data(digest)).await
    }

    async fn blob_reader(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<Option<BlobReader>> {
        let key = self.keys.blob_data(digest);
        let get_range = match range {
            Some(r) if r.start >= r.end => {
                // Nothing to send; only the size is wanted.
                return Ok(self.size_of(&key).await?.map(|size| BlobReader {
                    size,
                    body: Box::pin(futures_util::stream::empty()),
                }));
            }
            Some(r) => Some(GetRange::Bounded(r.start..r.end)),
            None => None,
        };
        let options = GetOptions {
            range: get_range,
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(&key, options).await {
            Ok(r) => r,
            Err(e @ object_store::Error::NotFound { .. }) => {
                return self.missing_after(&e, None).await
            }
            Err(e) => return Err(self.fail(e)),
        };
        let size = result.meta.size;
        let place = self.place.clone();
        let body = result
            .into_stream()
            .map_err(move |e| std::io::Error::other(format!("{place}: {e}")));
        Ok(Some(BlobReader {
            size,
            body: Box::pin(sync_wrapper::SyncStream::new(body)),
        }))
    }

    async fn blob_redirect(&self, digest: &Digest) -> Result<Option<String>> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        // Signed here, with no request to the store.
        let url = signer
            .signed_url(
                http::Method::GET,
                &self.keys.blob_data(digest),
                REDIRECT_LIFETIME,
            )
            .await
            .map_err(|e| self.fail(e))?;
        Ok(Some(url.to_string()))
    }

    async fn read_small_blob(&self, digest: &Digest, max: u64) -> Result<Option<Bytes>> {
        let key = self.keys.blob_data(digest);
        match self.size_of(&key).await? {
            None => return Ok(None),
            Some(n) if n > max => {
                return Err(StorageError::Corrupt(format!(
                    "blob {digest} is larger than {max} bytes"
                )))
            }
            Some(_) => {}
        }
        self.read(&key).await
    }

    async fn write_small_blob(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        let key = self.keys.blob_data(digest);
        if self.size_of(&key).await?.is_some() {
            return Ok(());
        }
        self.write(&key, bytes).await
    }

    async fn list_blobs(&self) -> Result<Vec<BlobInfo>> {
        self.list_blobs_impl().await
    }

    async fn delete_blob(&self, digest: &Digest) -> Result<bool> {
        self.delete(&self.keys.blob_data(digest)).await
    }

    async fn layer_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        Ok(self
            .read_link(&self.keys.layer_link(repo, digest))
            .await?
            .as_ref()
            == Some(digest))
    }

    async fn link_layer(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.write_link(&self.keys.layer_link(repo, digest), digest)
            .await
    }

    async fn unlink_layer(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        self.delete(&self.keys.layer_link(repo, digest)).await
    }

    async fn list_layers(&self, repo: &RepoName) -> Result<Vec<Digest>> {
        Ok(self
            .links_under(&self.keys.layers(repo))
            .await?
            .into_iter()
            .map(|(d, _)| d)
            .collect())
    }

    async fn upload_create(&self, repo: &RepoName, id: UploadId) -> Result<()> {
        self.upload_create_impl(repo, id).await
    }

    async fn upload_size(&self, repo: &RepoName, id: UploadId) -> Result<Option<u64>> {
        Ok(self.upload_state(repo, id).await?.map(|s| s.size))
    }

    async fn upload_size_from(
        &self,
        repo: &RepoName,
        id: UploadId,
        known: u64,
    ) -> Result<Option<u64>> {
        self.upload_size_from_impl(repo, id, known).await
    }

    async fn upload_append(
        &self,
        repo: &RepoName,
        id: UploadId,
        offset: u64,
        hasher: Option<Hasher>,
        body: ByteStream,
    ) -> Result<Appended> {
        self.append(repo, id, offset, hasher, body).await
    }

    async fn upload_hash(
        &self,
        repo: &RepoName,
        id: UploadId,
        algorithm: Algorithm,
    ) -> Result<(u64, Digest)> {
        self.upload_hash_impl(repo, id, algorithm).await
    }

    async fn upload_commit(&self, repo: &RepoName, id: UploadId, digest: &Digest) -> Result<()> {
        // The caller's hash covers what this instance received; the bucket
        // may hold other bytes by now (another instance wrote the same
        // offset), so the content is hashed again on its way into the blob.
        match self.commit(repo, id, digest).await? {
            None => Ok(()),
            Some(actual) => Err(StorageError::Corrupt(format!(
                "upload {id} changed in the bucket while it was committed: it hashes to {actual}, not {digest}; nothing was committed"
            ))),
        }
    }

    async fn upload_commit_verified(
        &self,
        repo: &RepoName,
        id: UploadId,
        expected: &Digest,
    ) -> Result<Option<Digest>> {
        self.commit(repo, id, expected).await
    }

    async fn upload_delete(&self, repo: &RepoName, id: UploadId) -> Result<bool> {
        self.delete_dir(&self.keys.upload_dir(repo, id)).await
    }

    async fn list_uploads(&self) -> Result<Vec<(RepoName, UploadInfo)>> {
        self.list_uploads_impl().await
    }

    async fn manifest_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        self.manifest_linked_impl(repo, digest).await
    }

    async fn link_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.write_link(&self.keys.revision_link(repo, digest), digest)
            .await
    }

    async fn list_manifests(&self, repo: &RepoName) -> Result<Vec<RevisionInfo>> {
        Ok(self
            .links_under(&self.keys.revisions(repo))
            .await?
            .into_iter()
            .map(|(digest, linked)| RevisionInfo { digest, linked })
            .collect())
    }

    async fn unlink_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        if self
            .read_link(&self.keys.revision_link(repo, digest))
            .await?
            .is_none()
        {
            return Ok(false);
        }
        // Tags first, so no tag ever points at a missing revision; a tag
        // moved to another manifest meanwhile stays (see `tags`).
        for tag in self.tag_names(repo).await? {
            self.untag_if(repo, &tag, digest).await?;
        }
        self.delete_dir(&self.keys.revision_dir(repo, digest)).await
    }

    async fn resolve_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>> {
        self.read_link(&self.keys.tag_current(repo, tag.as_str()))
            .await
    }

    async fn set_tag(&self, repo: &RepoName, tag: &Tag, digest: &Digest) -> Result<()> {
        self.set_tag_impl(repo, tag.as_str(), digest).await
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        self.delete_tag_impl(repo, tag.as_str()).await
    }

    async fn list_tags(&self, repo: &RepoName) -> Result<Option<Vec<String>>> {
        if !self.repository_exists(repo).await? {
            return Ok(None);
        }
        self.tag_names(repo).await.map(Some)
    }

    async fn list_repositories(&self) -> Result<Vec<String>> {
        let mut repos = self.walk().await?.repositories;
        repos.sort();
        Ok(repos)
    }

    async fn repository_exists(&self, repo: &RepoName) -> Result<bool> {
        let dirs = self.subdirs(&self.keys.repo(repo)).await?;
        Ok(dirs.iter().any(|d| d == "_manifests" || d == "_layers"))
    }

    async fn add_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<()> {
        let dir = self.keys.referrer_dir(repo, subject, referrer);
        self.write_link(&dir.clone().join("link"), referrer).await
    }

    async fn remove_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<()> {
        self.delete_dir(&self.keys.referrer_dir(repo, subject, referrer))
            .await
            .map(|_| ())
    }

    async fn list_referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Digest>> {
        let mut out: Vec<Digest> = self
            .links_under(&self.keys.referrers(repo, subject))
            .await?
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        out.sort();
        Ok(out)
    }

    fn shared(&self) -> bool {
        true
    }

    async fn probe(&self) -> Result<()> {
        let key = self.keys.probe();
        let attempt = async {
            self.write(&key, Bytes::from_static(b"regproxy readiness probe\n"))
                .await?;
            self.delete(&key).await.map(|_| ())
        };
        attempt.await.map_err(|e| {
            let msg = match e {
                StorageError::Unavailable(m) => m,
                other => other.to_string(),
            };
            if msg.contains("; hint: ") {
                return StorageError::Unavailable(msg);
            }
            let hint = hint_for(&msg);
            StorageError::Unavailable(format!("{msg}; hint: {hint}"))
        })
    }

    async fn gc_lease_acquire(&self, holder: &str, ttl: Duration) -> Result<bool> {
        self.lease_acquire(holder, ttl).await
    }

    async fn gc_lease_renew(&self, holder: &str, ttl: Duration) -> Result<()> {
        self.lease_renew(holder, ttl).await
    }

    async fn gc_lease_announce(
        &self,
        holder: &str,
        ttl: Duration,
        doomed: &[Digest],
    ) -> Result<()> {
        self.lease_announce(holder, ttl, doomed).await
    }

    async fn gc_doomed(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        self.doomed(digests).await
    }

    async fn gc_lease_release(&self, holder: &str) -> Result<()> {
        self.lease_release(holder).await
    }
}
