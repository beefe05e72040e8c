//! Listings from the bucket: every blob (GC, `du`), the links under a
//! repository folder, tag names, and the walk of `repositories/` that finds
//! repositories and uploads in progress. Digests are read from the keys
//! (`<alg>/<hex>/link`), not from each link object, so a listing costs one
//! paged LIST, not one GET per link. The walk lists one "folder" per
//! request (delimiter `/`), up to 16 at once, and is bounded in depth like
//! the filesystem's.

use std::time::SystemTime;

use futures_util::stream::FuturesUnordered;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStore;

use super::keys::digest_of_link;
use super::S3Storage;
use crate::oci::digest::Digest;
use crate::oci::names::{RepoName, UploadId};
use crate::registry::storage::{BlobInfo, Result, UploadInfo};

/// Folders a walk lists at once.
const WALK_PARALLEL: usize = 16;

/// What a walk of `repositories/` found.
pub(super) struct Walk {
    pub(super) repositories: Vec<String>,
    /// Names of folders with an `_uploads/` folder.
    pub(super) with_uploads: Vec<String>,
}

impl S3Storage {
    /// Every object under `dir/`, with its key below `dir/`, size and time.
    pub(super) async fn list_under(&self, dir: &Path) -> Result<Vec<(String, u64, SystemTime)>> {
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(dir))
            .try_collect()
            .await
            .map_err(|e| self.fail(e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let rel = self.keys.relative(m.location.as_ref(), dir)?.to_string();
                Some((rel, m.size, SystemTime::from(m.last_modified)))
            })
            .collect())
    }

    /// The names of the "folders" directly under `dir/`.
    pub(super) async fn subdirs(&self, dir: &Path) -> Result<Vec<String>> {
        let listed = self
            .store
            .list_with_delimiter(Some(dir))
            .await
            .map_err(|e| self.fail(e))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// `<alg>/<hex>/link` objects under `dir/`, as digests with their time.
    pub(super) async fn links_under(&self, dir: &Path) -> Result<Vec<(Digest, SystemTime)>> {
        Ok(self
            .list_under(dir)
            .await?
            .into_iter()
            .filter_map(|(rel, _, at)| Some((digest_of_link(&rel)?, at)))
            .collect())
    }

    pub(super) async fn list_blobs_impl(&self) -> Result<Vec<BlobInfo>> {
        Ok(self
            .list_under(&self.keys.blobs())
            .await?
            .into_iter()
            .filter_map(|(rel, size, modified)| {
                // <alg>/<2 hex>/<hex>/data
                let mut p = rel.split('/');
                let (alg, _, hex, data) = (p.next()?, p.next()?, p.next()?, p.next()?);
                if data != "data" || p.next().is_some() {
                    return None;
                }
                let digest = format!("{alg}:{hex}").parse().ok()?;
                Some(BlobInfo {
                    digest,
                    size,
                    modified,
                })
            })
            .collect())
    }

    /// Tags with a `current/link`, sorted.
    pub(super) async fn tag_names(&self, repo: &RepoName) -> Result<Vec<String>> {
        let mut tags: Vec<String> = self
            .list_under(&self.keys.tags(repo))
            .await?
            .into_iter()
            .filter_map(|(rel, _, _)| rel.strip_suffix("/current/link").map(str::to_string))
            .filter(|t| !t.contains('/'))
            .collect();
        tags.sort();
        Ok(tags)
    }

    /// Walk of `repositories/`, skipping `_` folders the way Distribution
    /// does; bounded by the name length limit. Up to [`WALK_PARALLEL`]
    /// folders are listed at once (the catalog of a large registry is one
    /// LIST per folder; one after the other they add up).
    pub(super) async fn walk(&self) -> Result<Walk> {
        let mut out = Walk {
            repositories: Vec::new(),
            with_uploads: Vec::new(),
        };
        let mut queue = vec![(self.keys.repositories(), String::new(), 0usize)];
        let mut running = FuturesUnordered::new();
        let max_depth = crate::oci::names::MAX_NAME_LEN / 2 + 1;
        loop {
            while running.len() < WALK_PARALLEL {
                let Some((dir, name, depth)) = queue.pop() else {
                    break;
                };
                if depth > max_depth {
                    continue;
                }
                running.push(async move {
                    let subdirs = self.subdirs(&dir).await;
                    (dir, name, depth, subdirs)
                });
            }
            let Some((dir, name, depth, subdirs)) = running.next().await else {
                break;
            };
            let subdirs = subdirs?;
            if !name.is_empty() {
                if subdirs.iter().any(|d| d == "_manifests" || d == "_layers") {
                    out.repositories.push(name.clone());
                }
                if subdirs.iter().any(|d| d == "_uploads") {
                    out.with_uploads.push(name.clone());
                }
            }
            for sub in subdirs.into_iter().filter(|d| !d.starts_with('_')) {
                let full = if name.is_empty() {
                    sub.clone()
                } else {
                    format!("{name}/{sub}")
                };
                queue.push((dir.clone().join(sub.as_str()), full, depth + 1));
            }
        }
        Ok(out)
    }

    /// Uploads in progress in every folder under `repositories/`.
    pub(super) async fn list_uploads_impl(&self) -> Result<Vec<(RepoName, UploadInfo)>> {
        let mut out = Vec::new();
        for name in self.walk().await?.with_uploads {
            let Ok(repo) = name.parse::<RepoName>() else {
                continue;
            };
            let base = self.keys.in_repo(&repo, "_uploads");
            let mut ids: Vec<UploadId> = Vec::new();
            for entry in self.subdirs(&base).await? {
                if let Ok(id) = entry.parse::<UploadId>() {
                    ids.push(id);
                }
            }
            for id in ids {
                let objects = self.list_under(&self.keys.upload_dir(&repo, id)).await?;
                let started = if objects.iter().any(|(rel, _, _)| rel == "startedat") {
                    self.read(&self.keys.upload_started(&repo, id))
                        .await?
                        .and_then(|b| parse_started(String::from_utf8_lossy(&b).trim()))
                } else {
                    None
                };
                let last_write = objects
                    .iter()
                    .map(|(_, _, at)| *at)
                    .max()
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let dir = self.keys.upload_dir(&repo, id);
                let size = super::chunks::counted(
                    objects
                        .iter()
                        .filter_map(|(rel, size, at)| {
                            super::chunks::parse_chunk(&dir, rel, *size, *at)
                        })
                        .collect(),
                )
                .iter()
                .map(|c| c.size)
                .sum();
                out.push((
                    repo.clone(),
                    UploadInfo {
                        id,
                        size,
                        started,
                        last_write,
                    },
                ));
            }
        }
        Ok(out)
    }
}

/// `startedat` as Distribution and regproxy write it (RFC 3339).
pub(super) fn parse_started(text: &str) -> Option<SystemTime> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(SystemTime::from(t))
}
