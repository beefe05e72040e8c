//! Filesystem storage in CNCF Distribution's layout, so a `registry:2` data
//! volume is served as it is and Distribution can serve what we write:
//!
//! ```text
//! <root>/docker/registry/v2/
//!   blobs/<alg>/<2 hex>/<hex>/data
//!   repositories/<name>/_layers/<alg>/<hex>/link
//!   repositories/<name>/_manifests/revisions/<alg>/<hex>/link
//!   repositories/<name>/_manifests/tags/<tag>/current/link
//!   repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
//!   repositories/<name>/_uploads/<uuid>/{data,startedat}
//!   repositories/<name>/_referrers/<alg>/<hex>/<alg>/<hex>/link   (ours; Distribution skips `_` dirs)
//!   _regproxy_tmp/                                                 (ours; temp files before rename)
//! ```
//!
//! Crash safety: every file that becomes visible is written to a temp file
//! (or the upload's own data file), fsynced, then renamed into place and its
//! directory fsynced. A kill at any moment leaves either the old state or the
//! new one, never a partial blob, manifest or tag.
//!
//! All filesystem work runs on tokio's blocking pool, never on the reactor.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{Appended, BlobReader, ByteRange, ByteStream, Result, Storage, StorageError};
use crate::oci::digest::{Algorithm, Digest, Hasher};
use crate::oci::names::{RepoName, Tag, UploadId};

/// Size of the buffers used to stream blobs to and from disk.
const IO_BUFFER: usize = 1 << 20;
/// Chunks in flight between a request body and its writer thread.
const WRITE_QUEUE: usize = 32;

/// Filesystem storage rooted at a directory (Distribution's `rootdirectory`).
#[derive(Clone)]
pub struct FsStorage {
    layout: Arc<Layout>,
}

struct Layout {
    v2: PathBuf,
    tmp: PathBuf,
}

impl FsStorage {
    /// Opens (creating if needed) storage under `root`, and removes temp
    /// files left by a previous crash.
    pub fn open(root: &Path) -> io::Result<FsStorage> {
        let v2 = root.join("docker/registry/v2");
        let tmp = v2.join("_regproxy_tmp");
        fs::create_dir_all(v2.join("blobs"))?;
        fs::create_dir_all(v2.join("repositories"))?;
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        Ok(FsStorage {
            layout: Arc::new(Layout { v2, tmp }),
        })
    }

    /// Runs blocking filesystem work off the reactor.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Layout) -> io::Result<T> + Send + 'static,
    {
        let layout = self.layout.clone();
        match tokio::task::spawn_blocking(move || f(&layout)).await {
            Ok(r) => r.map_err(StorageError::from),
            Err(join) => Err(StorageError::Io(io::Error::other(join.to_string()))),
        }
    }
}

fn alg_hex(d: &Digest) -> PathBuf {
    PathBuf::from(d.algorithm().as_str()).join(d.hex())
}

fn not_found_as_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn not_found_as_false(r: io::Result<()>) -> io::Result<bool> {
    not_found_as_none(r).map(|o| o.is_some())
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Layout {
    fn blob_data(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.v2
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    fn repo(&self, r: &RepoName) -> PathBuf {
        self.v2.join("repositories").join(r.as_str())
    }

    fn layer_link(&self, r: &RepoName, d: &Digest) -> PathBuf {
        self.repo(r).join("_layers").join(alg_hex(d)).join("link")
    }

    fn revision_dir(&self, r: &RepoName, d: &Digest) -> PathBuf {
        self.repo(r).join("_manifests/revisions").join(alg_hex(d))
    }

    fn tags_dir(&self, r: &RepoName) -> PathBuf {
        self.repo(r).join("_manifests/tags")
    }

    fn upload_dir(&self, r: &RepoName, id: UploadId) -> PathBuf {
        self.repo(r).join("_uploads").join(id.to_string())
    }

    fn referrers_dir(&self, r: &RepoName, subject: &Digest) -> PathBuf {
        self.repo(r).join("_referrers").join(alg_hex(subject))
    }

    /// Writes `bytes` to `path` atomically and durably.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let dir = path
            .parent()
            .ok_or_else(|| io::Error::other("path without parent"))?;
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.tmp)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        fsync_dir(dir)
    }

    fn write_link(&self, path: &Path, d: &Digest) -> io::Result<()> {
        self.write_atomic(path, d.to_string().as_bytes())
    }

    /// Reads a link file; `None` if absent.
    fn read_link(&self, path: &Path) -> io::Result<Option<Digest>> {
        let Some(text) = not_found_as_none(fs::read_to_string(path))? else {
            return Ok(None);
        };
        text.trim()
            .parse()
            .map(Some)
            .map_err(|_| io::Error::other(format!("corrupt link file {}", path.display())))
    }

    fn sorted_dir_names(dir: &Path) -> io::Result<Option<Vec<String>>> {
        let Some(rd) = not_found_as_none(fs::read_dir(dir))? else {
            return Ok(None);
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        names.sort();
        Ok(Some(names))
    }

    fn is_repository(dir: &Path) -> bool {
        dir.join("_manifests").is_dir() || dir.join("_layers").is_dir()
    }

    /// Depth-first walk of `repositories/`, skipping `_` directories the way
    /// Distribution does. Depth is bounded by the name length limit.
    fn walk_repositories(
        &self,
        dir: &Path,
        prefix: &str,
        depth: usize,
        out: &mut Vec<String>,
    ) -> io::Result<()> {
        if depth > crate::oci::names::MAX_NAME_LEN / 2 + 1 {
            return Ok(());
        }
        for name in Self::sorted_dir_names(dir)?.unwrap_or_default() {
            if name.starts_with('_') {
                continue;
            }
            let path = dir.join(&name);
            let full = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if Self::is_repository(&path) {
                out.push(full.clone());
            }
            self.walk_repositories(&path, &full, depth + 1, out)?;
        }
        Ok(())
    }

    fn unlink_manifest(&self, r: &RepoName, d: &Digest) -> io::Result<bool> {
        let rev = self.revision_dir(r, d);
        if self.read_link(&rev.join("link"))?.is_none() {
            return Ok(false);
        }
        // Tags first, so no tag ever points at a missing revision.
        for tag in Self::sorted_dir_names(&self.tags_dir(r))?.unwrap_or_default() {
            let tag_dir = self.tags_dir(r).join(&tag);
            if self.read_link(&tag_dir.join("current/link"))?.as_ref() == Some(d) {
                not_found_as_false(fs::remove_dir_all(&tag_dir))?;
            }
        }
        not_found_as_false(fs::remove_dir_all(&rev))
    }

    fn upload_commit(&self, r: &RepoName, id: UploadId, d: &Digest) -> io::Result<()> {
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

    fn upload_hash(&self, r: &RepoName, id: UploadId, alg: Algorithm) -> io::Result<(u64, Digest)> {
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

#[async_trait]
impl Storage for FsStorage {
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let d = digest.clone();
        self.run(move |l| Ok(not_found_as_none(fs::metadata(l.blob_data(&d)))?.map(|m| m.len())))
            .await
    }

    async fn blob_reader(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<Option<BlobReader>> {
        let d = digest.clone();
        let opened = self
            .run(move |l| {
                let Some(file) = not_found_as_none(File::open(l.blob_data(&d)))? else {
                    return Ok(None);
                };
                let size = file.metadata()?.len();
                Ok(Some((file, size)))
            })
            .await?;
        let Some((file, size)) = opened else {
            return Ok(None);
        };
        let range = range.unwrap_or(ByteRange {
            start: 0,
            end: size,
        });
        let mut file = tokio::fs::File::from_std(file);
        if range.start > 0 {
            use tokio::io::AsyncSeekExt;
            file.seek(SeekFrom::Start(range.start)).await?;
        }
        use tokio::io::AsyncReadExt;
        let reader = file.take(range.end.saturating_sub(range.start));
        let body = tokio_util::io::ReaderStream::with_capacity(reader, IO_BUFFER / 4);
        Ok(Some(BlobReader {
            size,
            body: Box::pin(body),
        }))
    }

    async fn read_small_blob(&self, digest: &Digest, max: u64) -> Result<Option<Bytes>> {
        let d = digest.clone();
        self.run(move |l| {
            let Some(file) = not_found_as_none(File::open(l.blob_data(&d)))? else {
                return Ok(None);
            };
            let mut buf = Vec::new();
            file.take(max + 1).read_to_end(&mut buf)?;
            if buf.len() as u64 > max {
                return Err(io::Error::other(format!(
                    "blob {d} is larger than {max} bytes"
                )));
            }
            Ok(Some(Bytes::from(buf)))
        })
        .await
    }

    async fn write_small_blob(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        let d = digest.clone();
        self.run(move |l| {
            let path = l.blob_data(&d);
            if path.exists() {
                return Ok(());
            }
            l.write_atomic(&path, &bytes)
        })
        .await
    }

    async fn layer_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let (r, d) = (repo.clone(), digest.clone());
        self.run(move |l| Ok(l.read_link(&l.layer_link(&r, &d))?.as_ref() == Some(&d)))
            .await
    }

    async fn link_layer(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let (r, d) = (repo.clone(), digest.clone());
        self.run(move |l| l.write_link(&l.layer_link(&r, &d), &d))
            .await
    }

    async fn unlink_layer(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let (r, d) = (repo.clone(), digest.clone());
        self.run(move |l| {
            let link = l.layer_link(&r, &d);
            let dir = link.parent().map(Path::to_path_buf).unwrap_or(link);
            not_found_as_false(fs::remove_dir_all(dir))
        })
        .await
    }

    async fn upload_create(&self, repo: &RepoName, id: UploadId) -> Result<()> {
        let r = repo.clone();
        self.run(move |l| {
            let dir = l.upload_dir(&r, id);
            fs::create_dir_all(&dir)?;
            let started = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .map_err(io::Error::other)?;
            l.write_atomic(&dir.join("startedat"), started.as_bytes())?;
            File::create(dir.join("data"))?.sync_all()?;
            fsync_dir(&dir)
        })
        .await
    }

    async fn upload_size(&self, repo: &RepoName, id: UploadId) -> Result<Option<u64>> {
        let r = repo.clone();
        self.run(move |l| {
            Ok(
                not_found_as_none(fs::metadata(l.upload_dir(&r, id).join("data")))?
                    .map(|m| m.len()),
            )
        })
        .await
    }

    async fn upload_append(
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

    async fn upload_hash(
        &self,
        repo: &RepoName,
        id: UploadId,
        algorithm: Algorithm,
    ) -> Result<(u64, Digest)> {
        let r = repo.clone();
        self.run(move |l| l.upload_hash(&r, id, algorithm)).await
    }

    async fn upload_commit(&self, repo: &RepoName, id: UploadId, digest: &Digest) -> Result<()> {
        let (r, d) = (repo.clone(), digest.clone());
        self.run(move |l| l.upload_commit(&r, id, &d)).await
    }

    async fn upload_delete(&self, repo: &RepoName, id: UploadId) -> Result<bool> {
        let r = repo.clone();
        self.run(move |l| not_found_as_false(fs::remove_dir_all(l.upload_dir(&r, id))))
            .await
    }

    async fn manifest_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let (r, d) = (repo.clone(), digest.clone());
        self.run(move |l| {
            Ok(l.read_link(&l.revision_dir(&r, &d).join("link"))?.as_ref() == Some(&d))
        })
        .await
    }

    async fn link_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let (r, d) = (repo.clone(), digest.clone());
        self.run(move |l| l.write_link(&l.revision_dir(&r, &d).join("link"), &d))
            .await
    }

    async fn unlink_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let (r, d) = (repo.clone(), digest.clone());
        self.run(move |l| l.unlink_manifest(&r, &d)).await
    }

    async fn resolve_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>> {
        let (r, t) = (repo.clone(), tag.clone());
        self.run(move |l| l.read_link(&l.tags_dir(&r).join(t.as_str()).join("current/link")))
            .await
    }

    async fn set_tag(&self, repo: &RepoName, tag: &Tag, digest: &Digest) -> Result<()> {
        let (r, t, d) = (repo.clone(), tag.clone(), digest.clone());
        self.run(move |l| {
            let tag_dir = l.tags_dir(&r).join(t.as_str());
            l.write_link(&tag_dir.join("index").join(alg_hex(&d)).join("link"), &d)?;
            l.write_link(&tag_dir.join("current/link"), &d)
        })
        .await
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        let (r, t) = (repo.clone(), tag.clone());
        self.run(move |l| {
            let tag_dir = l.tags_dir(&r).join(t.as_str());
            // Remove the `current` link first: it is what makes the tag exist.
            let had = not_found_as_false(fs::remove_dir_all(tag_dir.join("current")))?;
            not_found_as_false(fs::remove_dir_all(&tag_dir))?;
            Ok(had)
        })
        .await
    }

    async fn list_tags(&self, repo: &RepoName) -> Result<Option<Vec<String>>> {
        let r = repo.clone();
        self.run(move |l| {
            if !Layout::is_repository(&l.repo(&r)) {
                return Ok(None);
            }
            let tags_dir = l.tags_dir(&r);
            let names = Layout::sorted_dir_names(&tags_dir)?.unwrap_or_default();
            Ok(Some(
                names
                    .into_iter()
                    .filter(|t| tags_dir.join(t).join("current/link").is_file())
                    .collect(),
            ))
        })
        .await
    }

    async fn list_repositories(&self) -> Result<Vec<String>> {
        self.run(move |l| {
            let mut out = Vec::new();
            l.walk_repositories(&l.v2.join("repositories"), "", 0, &mut out)?;
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn repository_exists(&self, repo: &RepoName) -> Result<bool> {
        let r = repo.clone();
        self.run(move |l| Ok(Layout::is_repository(&l.repo(&r))))
            .await
    }

    async fn add_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<()> {
        let (r, s, d) = (repo.clone(), subject.clone(), referrer.clone());
        self.run(move |l| l.write_link(&l.referrers_dir(&r, &s).join(alg_hex(&d)).join("link"), &d))
            .await
    }

    async fn remove_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<()> {
        let (r, s, d) = (repo.clone(), subject.clone(), referrer.clone());
        self.run(move |l| {
            not_found_as_false(fs::remove_dir_all(
                l.referrers_dir(&r, &s).join(alg_hex(&d)),
            ))
            .map(|_| ())
        })
        .await
    }

    async fn list_referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Digest>> {
        let (r, s) = (repo.clone(), subject.clone());
        self.run(move |l| {
            let base = l.referrers_dir(&r, &s);
            let mut out = Vec::new();
            for alg in Layout::sorted_dir_names(&base)?.unwrap_or_default() {
                for hex in Layout::sorted_dir_names(&base.join(&alg))?.unwrap_or_default() {
                    if let Some(d) = l.read_link(&base.join(&alg).join(&hex).join("link"))? {
                        out.push(d);
                    }
                }
            }
            Ok(out)
        })
        .await
    }
}

/// Adapts a `ByteStream` from any fallible stream of bytes.
#[cfg(test)]
mod tests {
    use super::*;

    fn repo(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    fn body(parts: &[&'static [u8]]) -> ByteStream {
        let items: Vec<io::Result<Bytes>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures_util::stream::iter(items))
    }

    #[tokio::test]
    async fn upload_commit_read_back_in_distribution_layout() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let r = repo("team/app");
        let id = UploadId::new();
        s.upload_create(&r, id).await.unwrap();
        let a = s
            .upload_append(
                &r,
                id,
                0,
                Some(Algorithm::Sha256.hasher()),
                body(&[b"hello ", b"world"]),
            )
            .await
            .unwrap();
        assert_eq!(a.size, 11);
        let d = a.hasher.unwrap().finish();
        assert_eq!(d, Digest::sha256_of(b"hello world"));
        assert_eq!(
            s.upload_hash(&r, id, Algorithm::Sha256).await.unwrap(),
            (11, d.clone())
        );
        s.upload_commit(&r, id, &d).await.unwrap();

        let data = dir
            .path()
            .join("docker/registry/v2/blobs/sha256")
            .join(&d.hex()[..2])
            .join(d.hex())
            .join("data");
        assert_eq!(fs::read(data).unwrap(), b"hello world");
        let link = dir
            .path()
            .join("docker/registry/v2/repositories/team/app/_layers/sha256")
            .join(d.hex())
            .join("link");
        assert_eq!(fs::read_to_string(link).unwrap(), d.to_string());
        assert!(s.layer_linked(&r, &d).await.unwrap());
        assert_eq!(s.upload_size(&r, id).await.unwrap(), None);
        assert_eq!(
            s.list_repositories().await.unwrap(),
            vec!["team/app".to_string()]
        );
    }

    #[tokio::test]
    async fn tags_and_manifest_unlink() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let r = repo("a");
        let d = Digest::sha256_of(b"{}");
        s.write_small_blob(&d, Bytes::from_static(b"{}"))
            .await
            .unwrap();
        s.link_manifest(&r, &d).await.unwrap();
        for t in ["v1", "latest"] {
            s.set_tag(&r, &t.parse().unwrap(), &d).await.unwrap();
        }
        assert_eq!(
            s.list_tags(&r).await.unwrap().unwrap(),
            vec!["latest", "v1"]
        );
        assert!(s.delete_tag(&r, &"v1".parse().unwrap()).await.unwrap());
        assert!(s.manifest_linked(&r, &d).await.unwrap());
        assert!(s.unlink_manifest(&r, &d).await.unwrap());
        assert_eq!(
            s.list_tags(&r).await.unwrap().unwrap(),
            Vec::<String>::new()
        );
        assert!(!s.unlink_manifest(&r, &d).await.unwrap());
    }

    #[tokio::test]
    async fn stale_temp_files_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("docker/registry/v2/_regproxy_tmp");
        fs::create_dir_all(&tmp).unwrap();
        fs::write(tmp.join("half-written"), b"x").unwrap();
        FsStorage::open(dir.path()).unwrap();
        assert!(!tmp.join("half-written").exists());
    }
}
