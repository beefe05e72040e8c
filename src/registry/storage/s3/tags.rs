//! Tags on a shared bucket: setting, deleting, and removing the tags of a
//! deleted manifest without losing a tag another instance moves meanwhile.
//!
//! A tag is `_manifests/tags/<tag>/current/link` plus one history entry
//! per digest it ever pointed to, `index/<alg>/<hex>/link` (Distribution's
//! layout). Setting a tag writes the history entry first, then `current`.
//! The store offers no conditional delete (Garage ignores preconditions on
//! writes), so a delete re-reads `current` right before deleting it, never
//! deletes the tag's folder wholesale (that would take a `current` written
//! meanwhile), and when it removes the tags of a deleted manifest it looks
//! afterwards for history entries written since it started: one means
//! another instance moved the tag while we deleted it, and its `current`
//! is put back.

use std::collections::HashMap;
use std::time::SystemTime;

use super::keys::digest_of_link;
use super::S3Storage;
use crate::oci::digest::Digest;
use crate::oci::names::RepoName;
use crate::registry::storage::Result;

impl S3Storage {
    pub(super) async fn set_tag_impl(&self, repo: &RepoName, tag: &str, d: &Digest) -> Result<()> {
        self.write_link(&self.keys.tag_index(repo, tag, d), d)
            .await?;
        self.write_link(&self.keys.tag_current(repo, tag), d).await
    }

    /// The tag's history entries, with when each was last written.
    async fn tag_history(&self, repo: &RepoName, tag: &str) -> Result<HashMap<Digest, SystemTime>> {
        let dir = self.keys.tag_dir(repo, tag).join("index");
        Ok(self
            .list_under(&dir)
            .await?
            .into_iter()
            .filter_map(|(rel, _, at)| Some((digest_of_link(&rel)?, at)))
            .collect())
    }

    /// Deletes a tag: its `current` link, then the history entries that
    /// were there before (not one a concurrent set wrote).
    pub(super) async fn delete_tag_impl(&self, repo: &RepoName, tag: &str) -> Result<bool> {
        let history = self.tag_history(repo, tag).await?;
        let had = self.delete(&self.keys.tag_current(repo, tag)).await?;
        let now = self.tag_history(repo, tag).await?;
        for (d, at) in history {
            if now.get(&d) == Some(&at) {
                self.delete(&self.keys.tag_index(repo, tag, &d)).await?;
            }
        }
        Ok(had)
    }

    /// Removes `tag` if it points at `digest` (the manifest being deleted).
    pub(super) async fn untag_if(&self, repo: &RepoName, tag: &str, digest: &Digest) -> Result<()> {
        let current = self.keys.tag_current(repo, tag);
        if self.read_link(&current).await?.as_ref() != Some(digest) {
            return Ok(());
        }
        let before = self.tag_history(repo, tag).await?;
        // Re-read right before the delete: a tag moved meanwhile stays.
        if self.read_link(&current).await?.as_ref() != Some(digest) {
            return Ok(());
        }
        self.delete(&current).await?;
        self.delete(&self.keys.tag_index(repo, tag, digest)).await?;
        // A set through another instance between the re-read and the
        // delete lost its `current`; its history entry is newer than ours.
        if self.read_link(&current).await?.is_some() {
            return Ok(());
        }
        let moved = self
            .tag_history(repo, tag)
            .await?
            .into_iter()
            .filter(|(d, at)| d != digest && before.get(d).is_none_or(|b| at > b))
            .max_by_key(|(_, at)| *at);
        if let Some((d, _)) = moved {
            if self.manifest_linked_impl(repo, &d).await? {
                tracing::info!(%repo, tag, digest = %d, "a tag moved while its old manifest was deleted: kept");
                self.write_link(&current, &d).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn manifest_linked_impl(&self, repo: &RepoName, d: &Digest) -> Result<bool> {
        Ok(self
            .read_link(&self.keys.revision_link(repo, d))
            .await?
            .as_ref()
            == Some(d))
    }
}
