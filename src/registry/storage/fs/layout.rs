//! Where each object lives in CNCF Distribution's layout (see the table in
//! the parent module), and the small durable file operations on it: atomic
//! writes, link files, directory listings, the repository walk and
//! unlinking a manifest with its tags.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{alg_hex, fsync_dir, not_found_as_false, not_found_as_none};
use crate::oci::digest::Digest;
use crate::oci::names::{RepoName, UploadId};

/// The root of the layout and the temp directory next to it.
pub(super) struct Layout {
    pub(super) v2: PathBuf,
    pub(super) tmp: PathBuf,
}

impl Layout {
    pub(super) fn blob_data(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.v2
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub(super) fn repo(&self, r: &RepoName) -> PathBuf {
        self.v2.join("repositories").join(r.as_str())
    }

    pub(super) fn layer_link(&self, r: &RepoName, d: &Digest) -> PathBuf {
        self.repo(r).join("_layers").join(alg_hex(d)).join("link")
    }

    pub(super) fn revision_dir(&self, r: &RepoName, d: &Digest) -> PathBuf {
        self.repo(r).join("_manifests/revisions").join(alg_hex(d))
    }

    pub(super) fn tags_dir(&self, r: &RepoName) -> PathBuf {
        self.repo(r).join("_manifests/tags")
    }

    pub(super) fn upload_dir(&self, r: &RepoName, id: UploadId) -> PathBuf {
        self.repo(r).join("_uploads").join(id.to_string())
    }

    pub(super) fn referrers_dir(&self, r: &RepoName, subject: &Digest) -> PathBuf {
        self.repo(r).join("_referrers").join(alg_hex(subject))
    }

    /// Writes `bytes` to `path` atomically and durably.
    pub(super) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
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

    pub(super) fn write_link(&self, path: &Path, d: &Digest) -> io::Result<()> {
        self.write_atomic(path, d.to_string().as_bytes())
    }

    /// Reads a link file; `None` if absent.
    pub(super) fn read_link(&self, path: &Path) -> io::Result<Option<Digest>> {
        let Some(text) = not_found_as_none(fs::read_to_string(path))? else {
            return Ok(None);
        };
        text.trim()
            .parse()
            .map(Some)
            .map_err(|_| io::Error::other(format!("corrupt link file {}", path.display())))
    }

    pub(super) fn sorted_dir_names(dir: &Path) -> io::Result<Option<Vec<String>>> {
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

    pub(super) fn is_repository(dir: &Path) -> bool {
        dir.join("_manifests").is_dir() || dir.join("_layers").is_dir()
    }

    /// Depth-first walk of `repositories/`, skipping `_` directories the way
    /// Distribution does. Depth is bounded by the name length limit.
    pub(super) fn walk_repositories(
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

    pub(super) fn unlink_manifest(&self, r: &RepoName, d: &Digest) -> io::Result<bool> {
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
}
