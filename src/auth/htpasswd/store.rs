//! The server's view of the htpasswd file: the users by name, reloaded
//! when the file changes, with a fingerprint of each hash (tokens carry it)
//! and the bcrypt cost most hashes use (unknown users cost as much).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use sha2::Digest as _;

use super::{HtpasswdError, HtpasswdFile, Line, DEFAULT_COST};

/// A user as the server knows them: the hash, and a short fingerprint of
/// it that tokens carry, so a changed password or a removed user ends the
/// tokens issued before.
#[derive(Debug, Clone)]
pub struct StoredUser {
    pub hash: String,
    pub version: String,
}

type Users = Arc<HashMap<String, StoredUser>>;

/// The server's view of the htpasswd file, reloaded when it changes.
pub struct HtpasswdStore {
    path: PathBuf,
    state: RwLock<(Option<SystemTime>, Users)>,
    /// The bcrypt cost most entries use (checks of unknown users cost as much).
    cost: AtomicU32,
}

/// The cost of a bcrypt hash (`$2y$12$...` -> 12).
fn cost_of(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

fn version_of(hash: &str) -> String {
    hex::encode(&sha2::Sha256::digest(hash.as_bytes())[..8])
}

impl HtpasswdStore {
    pub fn open(path: &Path) -> Result<HtpasswdStore, HtpasswdError> {
        let store = HtpasswdStore {
            path: path.to_path_buf(),
            state: RwLock::new((None, Arc::default())),
            cost: AtomicU32::new(DEFAULT_COST),
        };
        store.reload(false)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file if its modification time changed (or always, when
    /// `force`d: SIGHUP). Returns whether it did; problems are logged with
    /// their line numbers.
    pub fn reload(&self, force: bool) -> Result<bool, HtpasswdError> {
        let mtime = fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if !force
            && self.state.read().unwrap_or_else(|p| p.into_inner()).0 == mtime
            && mtime.is_some()
        {
            return Ok(false);
        }
        let (file, problems) = HtpasswdFile::read(&self.path)?;
        for p in problems {
            tracing::warn!(file = %self.path.display(), line = p.line, "{}", p.message);
        }
        let users: HashMap<String, StoredUser> = file
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Entry { user, hash } => Some((
                    user.clone(),
                    StoredUser {
                        hash: hash.clone(),
                        version: version_of(hash),
                    },
                )),
                Line::Other(_) => None,
            })
            .collect();
        let mut costs: HashMap<u32, usize> = HashMap::new();
        for cost in users.values().filter_map(|u| cost_of(&u.hash)) {
            *costs.entry(cost).or_default() += 1;
        }
        let typical = costs.into_iter().max_by_key(|&(cost, n)| (n, cost));
        self.cost.store(
            typical.map_or(DEFAULT_COST, |(cost, _)| cost),
            Ordering::Relaxed,
        );
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = (mtime, Arc::new(users));
        Ok(true)
    }

    pub fn get(&self, user: &str) -> Option<StoredUser> {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .get(user)
            .cloned()
    }

    /// Whether a user of this name exists under any spelling that differs
    /// only in case (`Alice` for `alice`).
    pub fn knows_any_case(&self, user: &str) -> bool {
        let lower = user.to_lowercase();
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.1.contains_key(user) || state.1.keys().any(|k| k.to_lowercase() == lower)
    }

    /// The bcrypt cost most users' hashes have ([`DEFAULT_COST`] if none).
    pub fn typical_cost(&self) -> u32 {
        self.cost.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{edit, hash_password};
    use super::*;
    use crate::auth::secret::Secret;

    #[test]
    fn store_reloads_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let store = HtpasswdStore::open(&path).unwrap();
        assert!(store.is_empty());
        edit(&path, |f| f.set("alice", "$2y$04$x".into())).unwrap();
        assert!(store.reload(false).unwrap());
        let v1 = store.get("alice").unwrap().version;
        // Make sure the mtime moves even on coarse clocks.
        std::thread::sleep(std::time::Duration::from_millis(20));
        edit(&path, |f| f.set("alice", "$2y$04$y".into())).unwrap();
        store.reload(false).unwrap();
        assert_ne!(store.get("alice").unwrap().version, v1);
        assert!(store.knows_any_case("ALICE") && !store.knows_any_case("alicia"));
        assert_eq!(store.typical_cost(), 4);
        std::thread::sleep(std::time::Duration::from_millis(20));
        edit(&path, |f| {
            f.set("bob", hash_password(&Secret::new("b"), 5).unwrap())
        })
        .unwrap();
        store.reload(false).unwrap();
        assert_eq!(store.typical_cost(), 5);
    }
}
