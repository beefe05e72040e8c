//! Storage used per repository (`regproxy du`): the bytes of every blob
//! the repository's manifests need (manifests, configs, layers, children
//! of indexes). A blob shared by several repositories counts in each, and
//! once in the total.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::SystemTime;

use serde::Serialize;

use super::mark;
use super::report::human_bytes;
use crate::oci::digest::Digest;
use crate::oci::names::RepoName;
use crate::registry::storage::Result;
use crate::registry::Registry;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RepoUsage {
    pub repository: String,
    pub blobs: u64,
    pub bytes: u64,
}

/// Per repository (largest first), the total of distinct blobs, and what
/// lies in storage unreferenced.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub repositories: Vec<RepoUsage>,
    pub total_blobs: u64,
    pub total_bytes: u64,
    pub unreferenced_blobs: u64,
    pub unreferenced_bytes: u64,
}

impl Registry {
    pub async fn usage(&self) -> Result<Usage> {
        let storage = self.storage().clone();
        let sizes: HashMap<Digest, u64> = storage
            .list_blobs()
            .await?
            .into_iter()
            .map(|b| (b.digest, b.size))
            .collect();
        let mut all = BTreeSet::new();
        let mut repositories = Vec::new();
        for name in storage.list_repositories().await? {
            let Ok(repo) = name.parse::<RepoName>() else {
                continue;
            };
            let m = mark::mark_repo(&storage, repo, false, SystemTime::now()).await?;
            let present: Vec<&Digest> =
                m.needed.iter().filter(|d| sizes.contains_key(*d)).collect();
            repositories.push(RepoUsage {
                repository: name,
                blobs: present.len() as u64,
                bytes: present.iter().map(|d| sizes[*d]).sum(),
            });
            all.extend(m.needed);
        }
        repositories.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.repository.cmp(&b.repository)));
        let (mut total_blobs, mut total_bytes) = (0, 0);
        let (mut unreferenced_blobs, mut unreferenced_bytes) = (0, 0);
        for (d, size) in &sizes {
            if all.contains(d) {
                total_blobs += 1;
                total_bytes += size;
            } else {
                unreferenced_blobs += 1;
                unreferenced_bytes += size;
            }
        }
        Ok(Usage {
            repositories,
            total_blobs,
            total_bytes,
            unreferenced_blobs,
            unreferenced_bytes,
        })
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .repositories
            .iter()
            .map(|r| r.repository.len())
            .max()
            .unwrap_or(0)
            .max("unreferenced".len());
        for r in &self.repositories {
            writeln!(
                f,
                "{:>10}  {:<width$}  {} blob(s)",
                human_bytes(r.bytes),
                r.repository,
                r.blobs
            )?;
        }
        writeln!(
            f,
            "{:>10}  {:<width$}  {} blob(s), shared ones counted once",
            human_bytes(self.total_bytes),
            "total",
            self.total_blobs
        )?;
        if self.unreferenced_blobs > 0 {
            writeln!(
                f,
                "{:>10}  {:<width$}  {} blob(s) no manifest needs (regproxy gc frees them)",
                human_bytes(self.unreferenced_bytes),
                "unreferenced",
                self.unreferenced_blobs
            )?;
        }
        Ok(())
    }
}
