//! Uploads in the bucket. Each request body becomes its own object,
//! `_uploads/<uuid>/chunks/<offset>`, streamed as a multipart upload of
//! [`PART`]-byte parts (one part being filled, one being sent: about
//! 2 × [`PART`] of memory per upload, whatever the body's size). A chunk is
//! visible only once complete, so an instance killed mid-request leaves the
//! upload as it was before that request. The upload's size is the sum of
//! its contiguous chunks, listed from the bucket: any instance can take the
//! next `PATCH` or the final `PUT`.
//!
//! The commit makes `blobs/.../data` by streaming the chunks in order
//! into one multipart object, hashing them on the way, and completes it
//! only if the digest matches; otherwise it is aborted and nothing becomes
//! visible. It never trusts a hash taken earlier (in this process's memory,
//! or before a server-side copy): on a shared bucket another instance may
//! have rewritten a chunk since.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};

use super::S3Storage;
use crate::oci::digest::{Algorithm, Digest, Hasher};
use crate::oci::names::{RepoName, UploadId};
use crate::registry::storage::{Appended, ByteStream, Result, StorageError};

/// Bytes per multipart part (S3's minimum for all but the last part).
pub(super) const PART: usize = 5 << 20;
/// Bytes hashed per hop to the blocking pool when reading chunks back.
const HASH_BATCH: usize = 1 << 20;

/// `chunks/<offset>` with its size, as `(offset, size)`.
pub(super) fn chunk_offset(rel: &str, size: u64) -> Option<(u64, u64)> {
    let offset = rel.strip_prefix("chunks/")?.parse::<u64>().ok()?;
    Some((offset, size))
}

/// The chunks that follow each other from offset 0, in order.
fn contiguous(chunks: impl Iterator<Item = (u64, u64)>) -> Vec<(u64, u64)> {
    let mut all: Vec<(u64, u64)> = chunks.collect();
    all.sort();
    let mut end = 0;
    let mut out = Vec::new();
    for (offset, size) in all {
        if offset == end && size > 0 {
            end += size;
            out.push((offset, size));
        }
    }
    out
}

/// Bytes of an upload: the contiguous chunks' sizes.
pub(super) fn contiguous_size(chunks: impl Iterator<Item = (u64, u64)>) -> u64 {
    contiguous(chunks).iter().map(|(_, s)| s).sum()
}

/// An upload as the bucket holds it.
pub(super) struct UploadState {
    pub(super) size: u64,
    /// `(offset, size)` of each chunk, in order.
    chunks: Vec<(u64, u64)>,
}

/// Hashes `bytes` on the blocking pool.
async fn hash_off_reactor(mut h: Hasher, bytes: Bytes) -> Result<Hasher> {
    tokio::task::spawn_blocking(move || {
        h.update(&bytes);
        h
    })
    .await
    .map_err(|e| StorageError::Io(std::io::Error::other(e.to_string())))
}

/// Streams bytes into one object: a single `PUT` if they fit in one part,
/// else a multipart upload with one part in flight while the next fills.
struct PartWriter<'a> {
    s: &'a S3Storage,
    key: Path,
    buf: BytesMut,
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: Option<tokio::task::JoinHandle<object_store::Result<()>>>,
    hasher: Option<Hasher>,
    /// Bytes pushed so far.
    written: u64,
    /// Whether `buf`'s bytes are already hashed (see [`PartWriter::digest`]).
    tail_hashed: bool,
}

impl<'a> PartWriter<'a> {
    fn new(s: &'a S3Storage, key: Path, hasher: Option<Hasher>) -> PartWriter<'a> {
        PartWriter {
            s,
            key,
            buf: BytesMut::new(),
            upload: None,
            in_flight: None,
            hasher,
            written: 0,
            tail_hashed: false,
        }
    }

    async fn push(&mut self, bytes: &[u8]) -> Result<()> {
        self.written += bytes.len() as u64;
        self.buf.extend_from_slice(bytes);
        while self.buf.len() >= PART {
            let part = self.buf.split_to(PART).freeze();
            self.send(part).await?;
        }
        Ok(())
    }

    async fn land(&mut self) -> Result<()> {
        if let Some(f) = self.in_flight.take() {
            match f.await {
                Ok(r) => r.map_err(|e| self.s.fail(e))?,
                Err(e) => return Err(StorageError::Io(std::io::Error::other(e.to_string()))),
            }
        }
        Ok(())
    }

    async fn send(&mut self, part: Bytes) -> Result<()> {
        if let Some(h) = self.hasher.take() {
            self.hasher = Some(hash_off_reactor(h, part.clone()).await?);
        }
        if self.upload.is_none() {
            let u = self
                .s
                .store
                .put_multipart(&self.key)
                .await
                .map_err(|e| self.s.fail(e))?;
            self.upload = Some(u);
        }
        self.land().await?;
        if let Some(u) = self.upload.as_mut() {
            self.in_flight = Some(tokio::spawn(u.put_part(PutPayload::from_bytes(part))));
        }
        Ok(())
    }

    /// Hashes what is buffered and returns the digest of everything pushed.
    async fn digest(&mut self) -> Result<Option<Digest>> {
        if !self.tail_hashed {
            if let Some(h) = self.hasher.take() {
                self.hasher = Some(hash_off_reactor(h, self.buf.clone().freeze()).await?);
            }
            self.tail_hashed = true;
        }
        Ok(self.hasher.clone().map(Hasher::finish))
    }

    /// Makes the object visible; gives back the size and the hash.
    async fn complete(mut self) -> Result<(u64, Option<Hasher>)> {
        self.digest().await?;
        let tail = std::mem::take(&mut self.buf).freeze();
        if self.upload.is_none() {
            self.s.write(&self.key, tail).await?;
            return Ok((self.written, self.hasher.take()));
        }
        self.land().await?;
        if let Some(u) = self.upload.as_mut() {
            if !tail.is_empty() {
                u.put_part(PutPayload::from_bytes(tail))
                    .await
                    .map_err(|e| self.s.fail(e))?;
            }
            u.complete().await.map_err(|e| self.s.fail(e))?;
        }
        self.upload = None;
        Ok((self.written, self.hasher.take()))
    }

    /// Drops what was sent: nothing becomes visible.
    async fn abort(mut self) {
        if let Some(f) = self.in_flight.take() {
            f.abort();
        }
        if let Some(mut u) = self.upload.take() {
            if let Err(e) = u.abort().await {
                tracing::warn!(error = %e, "aborting a multipart upload failed; the store drops it later");
            }
        }
    }
}

impl S3Storage {
    pub(super) async fn upload_create_impl(&self, repo: &RepoName, id: UploadId) -> Result<()> {
        let started = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| StorageError::Io(std::io::Error::other(e)))?;
        self.write(&self.keys.upload_started(repo, id), Bytes::from(started))
            .await
    }

    /// The upload's size and chunks; `None` if it does not exist.
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
        let mut chunks = Vec::new();
        for m in &objects {
            let Some(rel) = self.keys.relative(m.location.as_ref(), &dir) else {
                continue;
            };
            if rel == "startedat" {
                started = true;
            } else if let Some(c) = chunk_offset(rel, m.size) {
                chunks.push(c);
            }
        }
        if !started {
            return Ok(None);
        }
        let chunks = contiguous(chunks.into_iter());
        Ok(Some(UploadState {
            size: chunks.iter().map(|(_, s)| s).sum(),
            chunks,
        }))
    }

    /// Streams `body` into the chunk object at `offset`, hashing as it goes.
    pub(super) async fn append(
        &self,
        repo: &RepoName,
        id: UploadId,
        offset: u64,
        hasher: Option<Hasher>,
        mut body: ByteStream,
    ) -> Result<Appended> {
        let mut w = PartWriter::new(self, self.keys.upload_chunk(repo, id, offset), hasher);
        let mut client_error = None;
        loop {
            match body.next().await {
                Some(Ok(bytes)) => {
                    if let Err(e) = w.push(&bytes).await {
                        w.abort().await;
                        return Err(e);
                    }
                }
                Some(Err(e)) => {
                    // What arrived before the failure is kept, as on disk.
                    client_error = Some(e);
                    break;
                }
                None => break,
            }
        }
        if w.written == 0 {
            return Ok(Appended {
                size: offset,
                hasher: w.hasher.take(),
                client_error,
            });
        }
        let (n, hasher) = w.complete().await?;
        Ok(Appended {
            size: offset + n,
            hasher,
            client_error,
        })
    }

    /// Streams one chunk's bytes to `f` (in order).
    async fn stream_chunk(
        &self,
        repo: &RepoName,
        id: UploadId,
        offset: u64,
    ) -> Result<futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>> {
        let key = self.keys.upload_chunk(repo, id, offset);
        let got = self.store.get(&key).await.map_err(|e| self.fail(e))?;
        Ok(got.into_stream())
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
            .ok_or_else(|| StorageError::Corrupt(format!("upload {id} vanished")))?;
        let mut h = alg.hasher();
        let mut batch = BytesMut::new();
        for (offset, _) in &state.chunks {
            let mut s = self.stream_chunk(repo, id, *offset).await?;
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
    /// may rewrite a chunk between a hash and a copy, and an in-memory hash
    /// of what this instance received proves nothing about what the bucket
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
            .ok_or_else(|| StorageError::Corrupt(format!("upload {id} vanished")))?;
        let blob = self.keys.blob_data(digest);
        let exists = self.size_of(&blob).await?.is_some();
        let stream_copy = !exists && !state.chunks.is_empty();
        if !stream_copy {
            // Nothing to copy (an empty upload, or the blob is there): the
            // client's claim is still checked.
            let (_, actual) = self.upload_hash_impl(repo, id, alg).await?;
            if &actual != digest {
                return Ok(Some(actual));
            }
        }
        if !exists {
            match state.chunks.as_slice() {
                [] => self.write(&blob, Bytes::new()).await?,
                chunks => {
                    let mut w = PartWriter::new(self, blob.clone(), Some(alg.hasher()));
                    if let Err(e) = self.copy_chunks(repo, id, chunks, &mut w).await {
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
        }
        self.write_link(&self.keys.layer_link(repo, digest), digest)
            .await?;
        self.delete_dir(&self.keys.upload_dir(repo, id)).await?;
        Ok(None)
    }

    async fn copy_chunks(
        &self,
        repo: &RepoName,
        id: UploadId,
        chunks: &[(u64, u64)],
        w: &mut PartWriter<'_>,
    ) -> Result<()> {
        for (offset, _) in chunks {
            let mut s = self.stream_chunk(repo, id, *offset).await?;
            while let Some(b) = s.next().await {
                w.push(&b.map_err(|e| self.fail(e))?).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_counts_only_contiguous_chunks() {
        let c = [(10, 5), (0, 10), (30, 1), (15, 0)];
        assert_eq!(contiguous(c.into_iter()), vec![(0, 10), (10, 5)]);
        assert_eq!(contiguous_size(c.into_iter()), 15);
        assert_eq!(
            chunk_offset("chunks/00000000000000000042", 3),
            Some((42, 3))
        );
        assert_eq!(chunk_offset("startedat", 3), None);
    }
}
