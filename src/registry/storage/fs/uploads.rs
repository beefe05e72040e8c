//! Uploads on disk: appending a request body to `_uploads/<uuid>/data`,
//! re-hashing an upload from disk after a restart, and committing it into
//! `blobs/` by rename.
//!
//! An append holds at most two buffers of [`BATCH`] bytes, whatever the size
//! of the body or the speed of the client: one being filled from the socket
//! on the reactor, one being written and hashed on the blocking pool. No
//! thread is held while the client is slow; reading the socket waits for
//! the disk (backpressure). Writes are not fsynced per request: the kernel
//! is told to start writeback as data arrives, and the blob is made durable
//! once, when it is committed. After a crash the upload's size is what is
//! on disk, and the digest is recomputed from it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::Semaphore;

use super::layout::Layout;
use super::{fsync_dir, FsStorage, IO_BUFFER};
use crate::oci::digest::{Algorithm, Digest, Hasher};
use crate::oci::names::{RepoName, UploadId};
use crate::registry::storage::{Appended, ByteStream, Result, StorageError};

/// Bytes gathered from the socket before one write to disk; an upload in
/// flight holds two such buffers at most.
pub(super) const BATCH: usize = 64 * 1024;
/// Writeback is started every this many bytes, so the commit's fsync has
/// little left to do.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// The disk side of an append, moved to the blocking pool for each write
/// and back.
struct Writer {
    file: File,
    /// Where the next write goes (= bytes in the file).
    offset: u64,
    hasher: Option<Hasher>,
    /// Start of the range whose writeback has not been started yet.
    unflushed: u64,
}

impl Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, self.offset)?;
        self.offset += buf.len() as u64;
        if let Some(h) = self.hasher.as_mut() {
            h.update(buf);
        }
        if self.offset - self.unflushed >= WRITEBACK_EVERY {
            start_writeback(&self.file, self.unflushed, self.offset - self.unflushed);
            self.unflushed = self.offset;
        }
        Ok(())
    }
}

/// Asks the kernel to start writing a range back to disk, without waiting
/// (Linux `sync_file_range`); elsewhere a no-op. Only a hint: the commit's
/// fsync is what makes the blob durable.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain syscall on a file descriptor we own, with no pointers.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// A write (and hash) of one full buffer, running on the blocking pool.
type InFlight = tokio::task::JoinHandle<(Writer, Vec<u8>, io::Result<()>)>;

/// Starts writing `buf` once one of the storage's writer slots is free, so
/// at most that many threads copy and hash at once, however many uploads
/// are running (more would only contend for the same cores).
async fn spawn_write(
    writers: &Arc<Semaphore>,
    mut writer: Writer,
    buf: Vec<u8>,
) -> Result<InFlight> {
    let slot = writers
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| StorageError::Io(io::Error::other("upload writers closed")))?;
    Ok(tokio::task::spawn_blocking(move || {
        let r = writer.write(&buf);
        drop(slot);
        (writer, buf, r)
    }))
}

/// Waits for a write; gives back the writer and its (emptied) buffer.
async fn land(write: InFlight) -> Result<(Writer, Vec<u8>)> {
    match write.await {
        Ok((writer, mut buf, Ok(()))) => {
            buf.clear();
            Ok((writer, buf))
        }
        Ok((_, _, Err(e))) => Err(StorageError::from(e)),
        Err(join) => Err(StorageError::Io(io::Error::other(join.to_string()))),
    }
}

impl FsStorage {
    /// Streams `body` into the upload's data file at `offset`, hashing as it
    /// writes, with bounded memory (see the module comment).
    pub(super) async fn append(
        &self,
        repo: &RepoName,
        id: UploadId,
        offset: u64,
        hasher: Option<Hasher>,
        mut body: ByteStream,
    ) -> Result<Appended> {
        let path = self.layout.upload_dir(repo, id).join("data");
        let file = self
            .run(move |_| {
                let file = OpenOptions::new().write(true).open(&path)?;
                // Drop anything past the agreed offset (a torn write before a crash).
                file.set_len(offset)?;
                Ok(file)
            })
            .await?;
        let mut writer = Some(Writer {
            file,
            offset,
            hasher,
            unflushed: offset,
        });
        let mut in_flight: Option<InFlight> = None;
        let mut filling = Vec::with_capacity(BATCH);
        let mut spare: Option<Vec<u8>> = None;
        let mut client_error = None;
        loop {
            let chunk = match body.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    client_error = Some(e);
                    break;
                }
                None => break,
            };
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let n = rest.len().min(BATCH - filling.len());
                filling.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                if filling.len() < BATCH {
                    continue;
                }
                // A full buffer: wait for the previous write, then hand this
                // one over and keep reading into the other.
                if let Some(w) = in_flight.take() {
                    let (back, buf) = land(w).await?;
                    writer = Some(back);
                    spare = Some(buf);
                }
                let next = spare.take().unwrap_or_else(|| Vec::with_capacity(BATCH));
                let full = std::mem::replace(&mut filling, next);
                let w = writer
                    .take()
                    .ok_or_else(|| StorageError::Io(io::Error::other("upload writer lost")))?;
                in_flight = Some(spawn_write(&self.writers, w, full).await?);
            }
        }
        // What arrived before the end (or before the client failed) is kept.
        if let Some(w) = in_flight.take() {
            writer = Some(land(w).await?.0);
        }
        let mut writer =
            writer.ok_or_else(|| StorageError::Io(io::Error::other("upload writer lost")))?;
        if !filling.is_empty() {
            writer = land(spawn_write(&self.writers, writer, filling).await?)
                .await?
                .0;
        }
        Ok(Appended {
            size: writer.offset,
            hasher: writer.hasher,
            client_error,
        })
    }
}

impl Layout {
    pub(super) fn upload_commit(&self, r: &RepoName, id: UploadId, d: &Digest) -> io::Result<()> {
        let dir = self.upload_dir(r, id);
        let src = dir.join("data");
        let dst = self.blob_data(d);
        if !dst.exists() {
            let blob_dir = dst
                .parent()
                .ok_or_else(|| io::Error::other("blob path without parent"))?;
            fs::create_dir_all(blob_dir)?;
            File::open(&src)?.sync_all()?;
            fs::rename(&src, &dst)?;
            fsync_dir(blob_dir)?;
        }
        self.write_link(&self.layer_link(r, d), d)?;
        fs::remove_dir_all(&dir)
    }

    pub(super) fn upload_hash(
        &self,
        r: &RepoName,
        id: UploadId,
        alg: Algorithm,
    ) -> io::Result<(u64, Digest)> {
        let mut file = File::open(self.upload_dir(r, id).join("data"))?;
        let mut hasher = alg.hasher();
        let mut buf = vec![0u8; IO_BUFFER];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok((size, hasher.finish()))
    }
}
