//! The inventory of the layout for garbage collection, `du` and the purge
//! of abandoned uploads: every blob with its size and mtime, a
//! repository's manifest revisions and layer links, its uploads in
//! progress, and deleting a blob's content.

use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::layout::Layout;
use super::not_found_as_none;
use crate::oci::digest::Digest;
use crate::oci::names::{RepoName, UploadId};
use crate::registry::storage::{BlobInfo, RevisionInfo, UploadInfo};

impl Layout {
    /// `blobs/<alg>/<2 hex>/<hex>/data` for every blob; entries that are not
    /// a valid digest (foreign files) are skipped.
    pub(super) fn list_blobs(&self) -> io::Result<Vec<BlobInfo>> {
        let base = self.v2.join("blobs");
        let mut out = Vec::new();
        for alg in Self::sorted_dir_names(&base)?.unwrap_or_default() {
            for prefix in Self::sorted_dir_names(&base.join(&alg))?.unwrap_or_default() {
                let dir = base.join(&alg).join(&prefix);
                for hex in Self::sorted_dir_names(&dir)?.unwrap_or_default() {
                    let Ok(digest) = format!("{alg}:{hex}").parse::<Digest>() else {
                        continue;
                    };
                    let Some(meta) = not_found_as_none(fs::metadata(dir.join(&hex).join("data")))?
                    else {
                        continue;
                    };
                    out.push(BlobInfo {
                        digest,
                        size: meta.len(),
                        modified: meta.modified()?,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Removes `blobs/<alg>/<2 hex>/<hex>/` (the `data` file and its
    /// directory), as Distribution's garbage collector does.
    pub(super) fn delete_blob(&self, d: &Digest) -> io::Result<bool> {
        let data = self.blob_data(d);
        let Some(dir) = data.parent() else {
            return Ok(false);
        };
        if not_found_as_none(fs::metadata(&data))?.is_none() {
            return Ok(false);
        }
        // The `<2 hex>` directory stays: a commit may be creating a blob in it.
        fs::remove_dir_all(dir)?;
        Ok(true)
    }

    /// Digests under `<dir>/<alg>/<hex>/link`, with the link's mtime.
    fn links_under(&self, dir: &Path) -> io::Result<Vec<(Digest, SystemTime)>> {
        let mut out = Vec::new();
        for alg in Self::sorted_dir_names(dir)?.unwrap_or_default() {
            for hex in Self::sorted_dir_names(&dir.join(&alg))?.unwrap_or_default() {
                let link = dir.join(&alg).join(&hex).join("link");
                let Some(meta) = not_found_as_none(fs::metadata(&link))? else {
                    continue;
                };
                if let Some(d) = self.read_link(&link)? {
                    out.push((d, meta.modified()?));
                }
            }
        }
        Ok(out)
    }

    pub(super) fn list_manifests(&self, r: &RepoName) -> io::Result<Vec<RevisionInfo>> {
        let dir = self.repo(r).join("_manifests/revisions");
        Ok(self
            .links_under(&dir)?
            .into_iter()
            .map(|(digest, linked)| RevisionInfo { digest, linked })
            .collect())
    }

    pub(super) fn list_layers(&self, r: &RepoName) -> io::Result<Vec<Digest>> {
        let dir = self.repo(r).join("_layers");
        Ok(self
            .links_under(&dir)?
            .into_iter()
            .map(|(d, _)| d)
            .collect())
    }

    /// The uploads of every directory under `repositories/` that has an
    /// `_uploads` folder (a repository whose first push crashed has nothing
    /// else yet). Depth is bounded by the name length limit.
    pub(super) fn list_all_uploads(&self) -> io::Result<Vec<(RepoName, UploadInfo)>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.v2.join("repositories"), String::new(), 0usize)];
        while let Some((dir, prefix, depth)) = stack.pop() {
            if depth > crate::oci::names::MAX_NAME_LEN / 2 + 1 {
                continue;
            }
            for name in Self::sorted_dir_names(&dir)?.unwrap_or_default() {
                if name.starts_with('_') {
                    continue;
                }
                let full = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}/{name}")
                };
                let path = dir.join(&name);
                if let Ok(repo) = full.parse::<RepoName>() {
                    if path.join("_uploads").is_dir() {
                        out.extend(
                            self.list_uploads(&repo)?
                                .into_iter()
                                .map(|u| (repo.clone(), u)),
                        );
                    }
                }
                stack.push((path, full, depth + 1));
            }
        }
        Ok(out)
    }

    /// `_uploads/<uuid>/` with their size, `startedat` and the data file's
    /// mtime; directories that are not an upload id are skipped.
    pub(super) fn list_uploads(&self, r: &RepoName) -> io::Result<Vec<UploadInfo>> {
        let base = self.repo(r).join("_uploads");
        let mut out = Vec::new();
        for name in Self::sorted_dir_names(&base)?.unwrap_or_default() {
            let Ok(id) = name.parse::<UploadId>() else {
                continue;
            };
            let dir = base.join(&name);
            let started = not_found_as_none(fs::read_to_string(dir.join("startedat")))?
                .and_then(|t| parse_started(t.trim()));
            let (size, last_write) = match not_found_as_none(fs::metadata(dir.join("data")))? {
                Some(m) => (m.len(), m.modified()?),
                // No data file: the directory's own mtime is the last change.
                None => (0, fs::metadata(&dir)?.modified()?),
            };
            out.push(UploadInfo {
                id,
                size,
                started,
                last_write,
            });
        }
        Ok(out)
    }
}

/// `startedat` as Distribution and regproxy write it (RFC 3339).
fn parse_started(text: &str) -> Option<SystemTime> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(SystemTime::from(t))
}
