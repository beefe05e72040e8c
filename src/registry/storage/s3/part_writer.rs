//! Streaming bytes into one object: a single `PUT` if they fit in one
//! part, else a multipart upload with one part in flight while the next
//! fills (two parts of memory; their size is [`part_size`]'s), hashed on
//! the way if asked. A part beyond the store's count limit is refused
//! with an error saying so, never sent.
//!
//! A writer that is dropped before [`PartWriter::complete`] or
//! [`PartWriter::abort`] (the client went away and hyper dropped the
//! request's future) aborts its multipart upload from a spawned task, so
//! no incomplete upload is left taking space in the bucket while the
//! instance lives.

use bytes::{Bytes, BytesMut};
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};

use super::part_size::{part_size, PartLimits};
use super::S3Storage;
use crate::oci::digest::{Digest, Hasher};
use crate::registry::storage::{Result, StorageError};

/// Hashes `bytes` on the blocking pool.
pub(super) async fn hash_off_reactor(mut h: Hasher, bytes: Bytes) -> Result<Hasher> {
    tokio::task::spawn_blocking(move || {
        h.update(&bytes);
        h
    })
    .await
    .map_err(|e| StorageError::Io(std::io::Error::other(e.to_string())))
}

pub(super) struct PartWriter<'a> {
    s: &'a S3Storage,
    key: Path,
    buf: BytesMut,
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: Option<tokio::task::JoinHandle<object_store::Result<()>>>,
    hasher: Option<Hasher>,
    /// Bytes pushed so far.
    pub(super) written: u64,
    /// Bytes sent (or being sent) in parts so far.
    sent: u64,
    /// Parts sent (or being sent) so far.
    parts: usize,
    limits: PartLimits,
    /// Whether `buf`'s bytes are already hashed (see [`PartWriter::digest`]).
    tail_hashed: bool,
}

impl<'a> PartWriter<'a> {
    pub(super) fn new(s: &'a S3Storage, key: Path, hasher: Option<Hasher>) -> PartWriter<'a> {
        PartWriter {
            s,
            key,
            buf: BytesMut::new(),
            upload: None,
            in_flight: None,
            hasher,
            written: 0,
            sent: 0,
            parts: 0,
            limits: s.part_limits,
            tail_hashed: false,
        }
    }

    /// Copies `bytes` into the part being filled, which is one allocation
    /// of exactly the part's size ([`part_size`]; a buffer grown by
    /// doubling would be 8 MiB for 5, and a sent part keeps its whole
    /// allocation alive until it lands); a full part is sent and a fresh
    /// one started.
    pub(super) async fn push(&mut self, mut bytes: &[u8]) -> Result<()> {
        self.written += bytes.len() as u64;
        while !bytes.is_empty() {
            let size = part_size(self.limits, self.sent);
            if self.buf.capacity() < size {
                let mut part = BytesMut::with_capacity(size);
                part.extend_from_slice(&self.buf);
                self.buf = part;
            }
            let take = (size - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() == size {
                let part = std::mem::take(&mut self.buf).freeze();
                self.send(part).await?;
            }
        }
        Ok(())
    }

    /// Counts a part about to go out; past the store's limit, an error.
    fn count_part(&mut self) -> Result<()> {
        if self.parts >= self.limits.max_parts {
            return Err(StorageError::Io(std::io::Error::other(format!(
                "{}: {} bytes need more than the {} parts an object may have in the store; \
                 hint: S3 objects are limited to 5 TiB",
                self.key, self.written, self.limits.max_parts
            ))));
        }
        self.parts += 1;
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
        self.count_part()?;
        self.sent += part.len() as u64;
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

    /// The hasher, when nothing was pushed.
    pub(super) fn take_hasher(&mut self) -> Option<Hasher> {
        self.hasher.take()
    }

    /// Hashes what is buffered and returns the digest of everything pushed.
    pub(super) async fn digest(&mut self) -> Result<Option<Digest>> {
        if !self.tail_hashed {
            if let Some(h) = self.hasher.take() {
                self.hasher = Some(hash_off_reactor(h, self.buf.clone().freeze()).await?);
            }
            self.tail_hashed = true;
        }
        Ok(self.hasher.clone().map(Hasher::finish))
    }

    /// Makes the object visible; gives back the size and the hash.
    pub(super) async fn complete(mut self) -> Result<(u64, Option<Hasher>)> {
        self.digest().await?;
        let tail = std::mem::take(&mut self.buf).freeze();
        if self.upload.is_none() {
            self.s.write(&self.key, tail).await?;
            return Ok((self.written, self.hasher.take()));
        }
        self.land().await?;
        if !tail.is_empty() {
            // On error the writer is dropped, which aborts the upload.
            self.count_part()?;
        }
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
    pub(super) async fn abort(mut self) {
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

impl Drop for PartWriter<'_> {
    /// Dropped unfinished (the request's future was dropped): the part in
    /// flight is cancelled and the multipart upload aborted in the
    /// background.
    fn drop(&mut self) {
        if let Some(f) = self.in_flight.take() {
            f.abort();
        }
        let Some(mut u) = self.upload.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = u.abort().await {
                        tracing::warn!(error = %e, "aborting a dropped multipart upload failed; the store drops it later");
                    }
                });
            }
            Err(_) => tracing::warn!(
                "a multipart upload was dropped outside the runtime; the store drops it later"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first parts' size.
    const PART: usize = 5 << 20;

    /// The part being filled is one allocation of `PART` bytes, not a
    /// buffer grown by doubling (8 MiB for a 5 MiB part, kept alive by
    /// the part in flight): the bench's 8 concurrent uploads on S3 held
    /// 18-21 MiB each instead of about 2 x 5 MiB.
    #[tokio::test]
    async fn the_part_buffer_holds_one_part_and_no_more() {
        let target = super::super::S3Target {
            endpoint: "http://127.0.0.1:9".into(),
            region: "garage".into(),
            bucket: "b".into(),
            prefix: String::new(),
            path_style: true,
            redirect_endpoint: None,
        };
        let key = super::super::S3Key {
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            session_token: None,
        };
        let s = S3Storage::open(&target, key).unwrap();
        let mut w = PartWriter::new(&s, Path::from("k"), None);
        // As a socket delivers a body: 64 KiB at a time, up to one byte
        // short of a part (no request is sent).
        let piece = vec![7u8; 64 << 10];
        while w.buf.len() + piece.len() < PART {
            w.push(&piece).await.unwrap();
        }
        w.push(&piece[..PART - 1 - w.buf.len()]).await.unwrap();
        assert_eq!(w.buf.len(), PART - 1);
        assert!(
            w.buf.capacity() <= PART,
            "the part buffer grew to {} bytes for a {PART}-byte part",
            w.buf.capacity()
        );
    }
}
