//! Uploads on disk: appending a request body to `_uploads/<uuid>/data`
//! (hashing as it writes, durable before it answers), re-hashing an upload
//! from disk after a restart, and committing it into `blobs/` by rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::layout::Layout;
use super::{fsync_dir, FsStorage, IO_BUFFER, WRITE_QUEUE};
use crate::oci::digest::{Algorithm, Digest, Hasher};
use crate::oci::names::{RepoName, UploadId};
use crate::registry::storage::{Appended, ByteStream, Result, StorageError};

impl FsStorage {
    /// Streams `body` into the upload's data file at `offset`, on a writer
    /// thread fed through a bounded queue (backpressure to the socket).
    pub(super) async fn append(
        &self,
        repo: &RepoName,
        id: UploadId,
        offset: u64,
        hasher: Option<Hasher>,
        mut body: ByteStream,
    ) -> Result<Appended> {
        let path = self.layout.upload_dir(repo, id).join("data");
        let (tx, rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let writer = tokio::task::spawn_blocking(move || write_chunks(path, offset, hasher, rx));
        let mut client_error = None;
        while let Some(item) = body.next().await {
            match item {
                Ok(chunk) if chunk.is_empty() => {}
                Ok(chunk) => {
                    if tx.send(chunk).await.is_err() {
                        break; // the writer failed; its error is reported below
                    }
                }
                Err(e) => {
                    client_error = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let (size, hasher) = match writer.await {
            Ok(r) => r?,
            Err(join) => return Err(StorageError::Io(io::Error::other(join.to_string()))),
        };
        Ok(Appended {
            size,
            hasher,
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

/// The writer side of an append: runs on the blocking pool, hashes what it
/// writes, and makes it durable before returning.
fn write_chunks(
    path: PathBuf,
    offset: u64,
    mut hasher: Option<Hasher>,
    mut rx: mpsc::Receiver<Bytes>,
) -> io::Result<(u64, Option<Hasher>)> {
    let mut file = OpenOptions::new().write(true).open(&path)?;
    // Drop anything past the agreed offset (a torn write before a crash).
    file.set_len(offset)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut out = BufWriter::with_capacity(IO_BUFFER, file);
    let mut size = offset;
    while let Some(chunk) = rx.blocking_recv() {
        out.write_all(&chunk)?;
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        size += chunk.len() as u64;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_data()?;
    Ok((size, hasher))
}
