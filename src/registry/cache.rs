//! A small in-memory cache of manifest answers: for a repository and a
//! reference (tag or digest), the manifest's digest, bytes and media type.
//!
//! Kept correct on push and delete: every manifest or tag change in a
//! repository drops that repository's entries, and bumps a generation so
//! that a read which began before the change cannot put its (old) answer
//! back afterwards. Changes made behind this process's back (another
//! instance on the same storage, files copied in) are seen after at most
//! [`TTL`]; on shared storage (S3, several instances) `manifests::get`
//! resolves every reference from storage and caches only content by digest. Bounded in bytes: past the budget, the oldest entries go first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::oci::digest::Digest;
use crate::oci::names::{Reference, RepoName};

/// How long an answer is trusted without looking at storage.
pub const TTL: Duration = Duration::from_secs(5);
/// Bytes of manifests kept at most.
pub const DEFAULT_BUDGET: usize = 32 << 20;

/// One cached answer.
#[derive(Clone, Debug)]
pub struct Cached {
    pub digest: Digest,
    pub bytes: Bytes,
    pub media_type: String,
}

struct Entry {
    cached: Cached,
    at: Instant,
}

#[derive(Default)]
struct Inner {
    repos: HashMap<RepoName, HashMap<Reference, Entry>>,
    /// Insertion order, for eviction; stale keys are skipped.
    order: VecDeque<(RepoName, Reference, Instant)>,
    bytes: usize,
    generation: u64,
}

pub struct ManifestCache {
    inner: Mutex<Inner>,
    budget: usize,
}

/// What [`ManifestCache::generation`] returns: proof of when a read began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generation(u64);

impl ManifestCache {
    pub fn new(budget: usize) -> ManifestCache {
        ManifestCache {
            inner: Mutex::default(),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take this before reading storage; pass it to [`ManifestCache::insert`].
    pub fn generation(&self) -> Generation {
        Generation(self.lock().generation)
    }

    pub fn get(&self, repo: &RepoName, reference: &Reference) -> Option<Cached> {
        let inner = self.lock();
        let e = inner.repos.get(repo)?.get(reference)?;
        (e.at.elapsed() < TTL).then(|| e.cached.clone())
    }

    /// Remembers an answer read from storage, unless something changed
    /// since `since` was taken.
    pub fn insert(
        &self,
        repo: &RepoName,
        reference: &Reference,
        since: Generation,
        cached: Cached,
    ) {
        let size = cached.bytes.len();
        if size > self.budget {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != since.0 {
            return;
        }
        let now = Instant::now();
        let old = inner
            .repos
            .entry(repo.clone())
            .or_default()
            .insert(reference.clone(), Entry { cached, at: now });
        inner.bytes += size;
        if let Some(old) = old {
            inner.bytes -= old.cached.bytes.len();
        }
        inner
            .order
            .push_back((repo.clone(), reference.clone(), now));
        while inner.bytes > self.budget {
            let Some((r, re, at)) = inner.order.pop_front() else {
                break;
            };
            inner.evict(&r, &re, at);
        }
        // The order queue holds stale keys too; keep it from growing without bound.
        if inner.order.len() > 4 * inner.len() + 64 {
            let Inner { order, repos, .. } = &mut *inner;
            order.retain(|(r, re, at)| {
                repos
                    .get(r)
                    .and_then(|m| m.get(re))
                    .is_some_and(|e| e.at == *at)
            });
        }
    }

    /// A manifest or tag of `repo` changed: forget its answers.
    pub fn invalidate(&self, repo: &RepoName) {
        let mut inner = self.lock();
        inner.generation += 1;
        if let Some(m) = inner.repos.remove(repo) {
            let freed: usize = m.values().map(|e| e.cached.bytes.len()).sum();
            inner.bytes -= freed;
        }
    }

    /// Forgets everything (e.g. after garbage collection).
    pub fn clear(&self) {
        let mut inner = self.lock();
        let generation = inner.generation + 1;
        *inner = Inner {
            generation,
            ..Inner::default()
        };
    }
}

impl Inner {
    fn len(&self) -> usize {
        self.repos.values().map(HashMap::len).sum()
    }

    /// Removes `(repo, reference)` if it is still the entry inserted at `at`.
    fn evict(&mut self, repo: &RepoName, reference: &Reference, at: Instant) {
        let Some(m) = self.repos.get_mut(repo) else {
            return;
        };
        if m.get(reference).is_some_and(|e| e.at == at) {
            if let Some(e) = m.remove(reference) {
                self.bytes -= e.cached.bytes.len();
            }
        }
        if m.is_empty() {
            self.repos.remove(repo);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(body: &'static [u8]) -> Cached {
        Cached {
            digest: Digest::sha256_of(body),
            bytes: Bytes::from_static(body),
            media_type: "m".into(),
        }
    }

    fn repo(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    fn tag(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn a_change_drops_the_repository_and_stops_older_reads() {
        let c = ManifestCache::new(1 << 20);
        let (a, b) = (repo("a"), repo("b"));
        let g = c.generation();
        c.insert(&a, &tag("v1"), g, cached(b"one"));
        c.insert(&b, &tag("v1"), g, cached(b"two"));
        assert_eq!(&c.get(&a, &tag("v1")).unwrap().bytes[..], b"one");
        // A read begins, then a push to `a` lands before the read inserts.
        let before_push = c.generation();
        c.invalidate(&a);
        assert!(c.get(&a, &tag("v1")).is_none());
        assert!(c.get(&b, &tag("v1")).is_some(), "other repositories stay");
        c.insert(&a, &tag("v1"), before_push, cached(b"stale"));
        assert!(
            c.get(&a, &tag("v1")).is_none(),
            "a read older than the change is not kept"
        );
        c.insert(&a, &tag("v1"), c.generation(), cached(b"new"));
        assert_eq!(&c.get(&a, &tag("v1")).unwrap().bytes[..], b"new");
        c.clear();
        assert!(c.get(&b, &tag("v1")).is_none());
    }

    #[test]
    fn bounded_in_bytes_oldest_first() {
        let c = ManifestCache::new(10);
        let r = repo("r");
        for (t, body) in [
            ("a", b"1234" as &'static [u8]),
            ("b", b"5678"),
            ("c", b"9012"),
        ] {
            c.insert(&r, &tag(t), c.generation(), cached(body));
        }
        assert!(c.get(&r, &tag("a")).is_none(), "the oldest went");
        assert!(c.get(&r, &tag("b")).is_some());
        assert!(c.get(&r, &tag("c")).is_some());
        assert!(c.lock().bytes <= 10);
        // Re-inserting one key many times does not grow the queue for ever.
        for _ in 0..1000 {
            c.insert(&r, &tag("c"), c.generation(), cached(b"9012"));
        }
        assert!(c.lock().order.len() < 200);
        c.insert(&r, &tag("big"), c.generation(), cached(b"far too large"));
        assert!(
            c.get(&r, &tag("big")).is_none(),
            "larger than the budget: not kept"
        );
    }
}
