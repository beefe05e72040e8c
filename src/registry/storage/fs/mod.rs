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

mod inventory;
mod layout;
mod reader;
#[cfg(test)]
mod tests;
mod uploads;

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    Appended, BlobInfo, BlobReader, ByteRange, ByteStream, Result, RevisionInfo, Storage,
    StorageError, UploadInfo,
};
use crate::oci::digest::{Algorithm, Digest, Hasher};
use crate::oci::names::{RepoName, Tag, UploadId};
use layout::Layout;

/// Size of the buffers used to stream blobs to and from disk.
const IO_BUFFER: usize = 1 << 20;

/// Filesystem storage rooted at a directory (Distribution's `rootdirectory`).
#[derive(Clone)]
pub struct FsStorage {
    layout: Arc<Layout>,
    /// Slots for upload writes on the blocking pool (see `uploads`).
    writers: Arc<tokio::sync::Semaphore>,
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
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(FsStorage {
            layout: Arc::new(Layout { v2, tmp }),
            writers: Arc::new(tokio::sync::Semaphore::new((2 * cores).max(4))),
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

pub(super) fn alg_hex(d: &Digest) -> PathBuf {
    PathBuf::from(d.algorithm().as_str()).join(d.hex())
}

pub(super) fn not_found_as_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn not_found_as_false(r: io::Result<()>) -> io::Result<bool> {
    not_found_as_none(r).map(|o| o.is_some())
}

pub(super) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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
        let body = reader::RangeReader::new(file, range.start, range.end.max(range.start));
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

    async fn list_blobs(&self) -> Result<Vec<BlobInfo>> {
        self.run(|l| l.list_blobs()).await
    }

    async fn delete_blob(&self, digest: &Digest) -> Result<bool> {
        let d = digest.clone();
        self.run(move |l| l.delete_blob(&d)).await
    }

    async fn list_layers(&self, repo: &RepoName) -> Result<Vec<Digest>> {
        let r = repo.clone();
        self.run(move |l| l.list_layers(&r)).await
    }

    async fn list_uploads(&self) -> Result<Vec<(RepoName, UploadInfo)>> {
        self.run(|l| l.list_all_uploads()).await
    }

    async fn list_manifests(&self, repo: &RepoName) -> Result<Vec<RevisionInfo>> {
        let r = repo.clone();
        self.run(move |l| l.list_manifests(&r)).await
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

    async fn probe(&self) -> Result<()> {
        self.run(|l| {
            let mut f = tempfile::Builder::new()
                .prefix("readyz-")
                .tempfile_in(&l.tmp)?;
            std::io::Write::write_all(&mut f, b"regproxy readiness probe\n")?;
            f.as_file().sync_all()?;
            f.close()
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
