//! Uploads in the bucket: `_uploads/<uuid>/startedat` as on disk, and one
//! chunk per request body ([`super::chunks`]: its objects, and which chunk
//! counts when two requests wrote one offset). The upload's size is the
//! sum of its counted chunks, listed from the bucket, so any instance can
//! take the next `PATCH` or the final `PUT`.
//!
//! A request streams its body into its own data object (never one another
//! request wrote) and marks the chunk only once the body is complete: a
//! body cut short, an instance killed mid-request or a request dropped by
//! its client leaves the upload as it was. A request whose chunk does not
//! count (the offset was taken first) deletes it and answers 416; one whose
//! upload was deleted meanwhile (cancelled, or purged through another
//! instance) deletes it and answers 404 `BLOB_UPLOAD_UNKNOWN`. While a
//! request streams, a `writing/<token>` object (refreshed every
//! [`WRITING_REFRESH`]) tells the purge of abandoned uploads, on any
//! instance, that the upload is alive.
//!
//! The commit makes `blobs/.../data` by streaming the counted chunks in
//! order into one multipart object, hashing them on the way, and completes
//! it only if the digest matches; otherwise it is aborted and nothing
//! becomes visible. It never trusts a hash taken earlier.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::chunks::{self, Chunk};
use super::part_writer::{hash_off_reactor, PartWriter};
use super::S3Storage;
use crate::oci::digest::{Algorithm, Digest, Hasher};
use crate::oci::names::{RepoName, UploadId};
use crate::registry::storage::{Appended, ByteStream, Result, StorageError};

/// Bytes hashed per hop to the blocking pool when reading chunks back.
const HASH_BATCH: usize = 1 << 20;
/// How often a request streaming into an upload rewrites its
/// `writing/<token>` object (an upload idle for less than twice this is
/// never purged while a request writes to it).
pub(super) const WRITING_REFRESH: Duration = Duration::from_secs(60);

/// An upload as the bucket holds it.
pub(super) struct UploadState {
    pub(super) size: u64,
    /// The counted chunks, in order.
    chunks: Vec<Chunk>,
}

fn vanished(id: UploadId) -> StorageError {
    StorageError::UploadUnknown(format!(
        "upload {id} is gone from the bucket (finished, cancelled, or purged through another instance)"
    ))
}

impl S3Storage {
    pub(super) async fn upload_create_impl(&self, repo: &RepoName, id: UploadId) -> Result<()> {
        let started = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| StorageError::Io(std::io::Error::other(e)))?;
        self.write(&self.keys.upload_started(repo, id), Bytes::from(started))
            .await
    }

    /// The upload's size and counted chunks; `None` if it does not exist.
    pub(super) async fn upload_state(
        &self,
        repo: &RepoName,
        id: UploadId,
    ) -> Result<Option<UploadState>> {
        let dir = self.keys.upload_dir(repo, id);
        let objects: Vec<object_store::ObjectMeta> =
            futures_util::TryStreamExt::try_collect(self.store.list(Some(&dir)))
                .await
                .map_err(|e| self.fail(e))?;
        let mut started = false;
        let mut all = Vec::new();
        for m in &objects {
            let Some(rel) = self.keys.relative(m.location.as_ref(), &dir) else {
                continue;
            };
            if rel == "startedat" {
                started = true;
            } else if let Some(c) = chunks::parse_chunk(&dir, rel, m.size, m.last_modified.into()) {
                all.push(c);
            }
        }
        if !started {
            return Ok(None);
        }
        let chunks = chunks::counted(all);
        Ok(Some(UploadState {
            size: chunks.iter().map(|c| c.size).sum(),
            chunks,
        }))
    }

    /// The chunk markers at `from` and after: one LIST of `chunks/`
    /// starting there, so its cost does not grow with the chunks before.
    async fn markers_from(&self, dir: &Path, from: u64) -> Result<Vec<Chunk>> {
        let prefix = chunks::under(dir, "chunks");
        let listing = match from.checked_sub(1) {
            None => self.store.list(Some(&prefix)),
            Some(before) => {
                let after = chunks::under(dir, &chunks::markers_after(before));
                self.store.list_with_offset(Some(&prefix), &after)
            }
        };
        let objects: Vec<object_store::ObjectMeta> =
            futures_util::TryStreamExt::try_collect(listing)
                .await
                .map_err(|e| self.fail(e))?;
        Ok(objects
            .iter()
            .filter_map(|m| {
                let rel = self.keys.relative(m.location.as_ref(), dir)?;
                chunks::parse_chunk(dir, rel, m.size, m.last_modified.into())
            })
            .collect())
    }

    /// The upload's size counting only the chunks from `known` on (a size
    /// it had); `None` only if `known` is 0 and the upload is not there.
    pub(super) async fn upload_size_from_impl(
        &self,
        repo: &RepoName,
        id: UploadId,
        known: u64,
    ) -> Result<Option<u64>> {
        if known == 0 {
            return Ok(self.upload_state(repo, id).await?.map(|s| s.size));
        }
        let dir = self.keys.upload_dir(repo, id);
        let later = chunks::counted_from(self.markers_from(&dir, known).await?, known);
        Ok(Some(known + later.iter().map(|c| c.size).sum::<u64>()))
    }

    /// Streams `body` into a new chunk at `offset`, hashing as it goes.
    pub(super) async fn append(
        &self,
        repo: &RepoName,
        id: UploadId,
        offset: u64,
        hasher: Option<Hasher>,
        body: ByteStream,
    ) -> Result<Appended> {
        let dir = self.keys.upload_dir(repo, id);
        let token = chunks::new_token();
        let writing = chunks::under(&dir, &chunks::writing_name(&token));
        self.write(&writing, Bytes::new()).await?;
        let result = self
            .append_chunk(repo, id, offset, &token, hasher, body, &writing)
            .await;
        self.drop_objects(&[writing]).await;
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn append_chunk(
        &self,
        repo: &RepoName,
        id: UploadId,
        offset: u64,
        token: &str,
        hasher: Option<Hasher>,
        mut body: ByteStream,
        writing: &Path,
    ) -> Result<Appended> {
        let dir = self.keys.upload_dir(repo, id);
        let data = chunks::under(&dir, &chunks::data_name(offset, token));
        let mut w = PartWriter::new(self, data.clone(), hasher);
        let mut refreshed = Instant::now();
        loop {
            match body.next().await {
                Some(Ok(bytes)) => {
                    if let Err(e) = w.push(&bytes).await {
                        w.abort().await;
                        return Err(e);
                    }
                    if refreshed.elapsed() >= WRITING_REFRESH {
                        self.write(writing, Bytes::new()).await?;
                        refreshed = Instant::now();
                    }
                }
                Some(Err(e)) => {
                    // A cut body is not kept: its bytes may be a stale
                    // copy of what a retry wrote through another instance.
                    w.abort().await;
                    return Ok(Appended {
                        size: offset,
                        hasher: None,
                        client_error: Some(e),
                    });
                }
                None => break,
            }
        }
        if w.written == 0 {
            return Ok(Appended {
                size: offset,
                hasher: w.take_hasher(),
                client_error: None,
            });
        }
        let (n, hasher) = w.complete().await?;
        let marker = chunks::under(&dir, &chunks::marker_name(offset, n, token));
        if let Err(e) = self.write(&marker, Bytes::new()).await {
            self.drop_objects(&[data]).await;
            return Err(e);
        }
        // Does the chunk count? Only now can it be compared with the
        // chunks other requests completed meanwhile. `offset` is a size the
        // upload had (the caller read it), so the chain below it is fixed
        // and only the markers from `offset` on are listed: a PATCH costs
        // the same at the 1000th chunk as at the first.
        let all = self.markers_from(&dir, offset).await?;
        if self
            .size_of(&self.keys.upload_started(repo, id))
            .await?
            .is_none()
        {
            self.drop_objects(&[marker, data]).await;
            return Err(vanished(id));
        }
        let counted = chunks::counted_from(all.clone(), offset);
        if !chunks::taken_alone(&counted, &all, token) {
            self.drop_objects(&[marker, data]).await;
            return Err(StorageError::OffsetTaken {
                start: offset,
                size: offset + counted.iter().map(|c| c.size).sum::<u64>(),
            });
        }
        Ok(Appended {
            size: offset + n,
            hasher,
            client_error: None,
        })
    }

    /// Deletes objects of a request that did not count; a failure only
    /// leaves an object the upload ignores (and its end removes).
    async fn drop_objects(&self, keys: &[Path]) {
        for key in keys {
            match self.store.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "deleting an upload object failed"),
            }
        }
    }

    /// One chunk's bytes, in order.
    async fn stream_chunk(
        &self,
        id: UploadId,
        chunk: &Chunk,
    ) -> Result<futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>> {
        match self.store.get(&chunk.data).await {
            Ok(got) => Ok(got.into_stream()),
            Err(object_store::Error::NotFound { .. }) => Err(vanished(id)),
            Err(e) => Err(self.fail(e)),
        }
    }

    pub(super) async fn upload_hash_impl(
        &self,
        repo: &RepoName,
        id: UploadId,
        alg: Algorithm,
    ) -> Result<(u64, Digest)> {
        let state = self
            .upload_state(repo, id)
            .await?
            .ok_or_else(|| vanished(id))?;
        let mut h = alg.hasher();
        let mut batch = BytesMut::new();
        for chunk in &state.chunks {
            let mut s = self.stream_chunk(id, chunk).await?;
            while let Some(b) = s.next().await {
                batch.extend_from_slice(&b.map_err(|e| self.fail(e))?);
                if batch.len() >= HASH_BATCH {
                    h = hash_off_reactor(h, std::mem::take(&mut batch).freeze()).await?;
                }
            }
        }
        h = hash_off_reactor(h, batch.freeze()).await?;
        Ok((state.size, h.finish()))
    }

    /// Makes the blob from the upload's chunks and links it, only if the
    /// content hashes to `digest` (else the actual digest is returned and
    /// nothing changes). The bytes are hashed on their way into the blob,
    /// never before a server-side copy: on a shared bucket another instance
    /// may add a chunk between a hash and a copy, and an in-memory hash of
    /// what this instance received proves nothing about what the bucket
    /// holds now.
    pub(super) async fn commit(
        &self,
        repo: &RepoName,
        id: UploadId,
        digest: &Digest,
    ) -> Result<Option<Digest>> {
        let alg = digest.algorithm();
        let state = self
            .upload_state(repo, id)
            .await?
            .ok_or_else(|| vanished(id))?;
        let blob = self.keys.blob_data(digest);
        let exists = self.size_of(&blob).await?.is_some();
        if exists || state.chunks.is_empty() {
            // Nothing to copy (an empty upload, or the blob is there): the
            // client's claim is still checked.
            let (_, actual) = self.upload_hash_impl(repo, id, alg).await?;
            if &actual != digest {
                return Ok(Some(actual));
            }
        }
        if !exists {
            if state.chunks.is_empty() {
                self.write(&blob, Bytes::new()).await?;
            } else {
                let mut w = PartWriter::new(self, blob.clone(), Some(alg.hasher()));
                if let Err(e) = self.copy_chunks(id, &state.chunks, &mut w).await {
                    w.abort().await;
                    return Err(e);
                }
                match w.digest().await {
                    Ok(Some(actual)) if &actual != digest => {
                        w.abort().await;
                        return Ok(Some(actual));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        w.abort().await;
                        return Err(e);
                    }
                }
                w.complete().await?;
            }
        }
        self.write_link(&self.keys.layer_link(repo, digest), digest)
            .await?;
        self.delete_dir(&self.keys.upload_dir(repo, id)).await?;
        Ok(None)
    }

    async fn copy_chunks(
        &self,
        id: UploadId,
        chunks: &[Chunk],
        w: &mut PartWriter<'_>,
    ) -> Result<()> {
        for chunk in chunks {
            let mut s = self.stream_chunk(id, chunk).await?;
            while let Some(b) = s.next().await {
                w.push(&b.map_err(|e| self.fail(e))?).await?;
            }
        }
        Ok(())
    }
}
