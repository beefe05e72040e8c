//! The mark phase: which manifests of a repository are kept, and every
//! blob they reference.
//!
//! A kept manifest keeps its own blob, its config and layers, and for an
//! index its child manifests (recursively). Roots are every linked
//! manifest, or with `untagged` only the tagged ones (plus revisions
//! younger than the grace period); then referrers (`subject`) of a kept
//! manifest are kept too, until nothing changes. Storage is read only
//! through the [`Storage`] trait.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use crate::oci::digest::Digest;
use crate::oci::names::RepoName;
use crate::registry::manifests::MAX_MANIFEST_SIZE;
use crate::registry::storage::{Result, Storage, StorageError};

/// What one manifest points at.
#[derive(Debug, Default, Clone)]
pub struct Refs {
    /// Config and layers (distributable ones).
    pub blobs: Vec<Digest>,
    /// Child manifests of an index.
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
}

impl Refs {
    /// What a manifest's JSON references: `config`, `layers`, `manifests`,
    /// `subject`, and the `fsLayers` of Docker schema 1 manifests (still
    /// found in old `registry:2` volumes). Anything else references nothing.
    pub fn parse(bytes: &[u8]) -> Refs {
        let Ok(doc) = serde_json::from_slice::<Value>(bytes) else {
            return Refs::default();
        };
        let digest = |v: &Value, key: &str| v.get(key)?.as_str()?.parse::<Digest>().ok();
        let list = |key: &str| doc.get(key).and_then(Value::as_array).into_iter().flatten();
        Refs {
            blobs: doc
                .get("config")
                .into_iter()
                .chain(list("layers"))
                .filter_map(|d| digest(d, "digest"))
                .chain(list("fsLayers").filter_map(|d| digest(d, "blobSum")))
                .collect(),
            children: list("manifests")
                .filter_map(|d| digest(d, "digest"))
                .collect(),
            subject: doc.get("subject").and_then(|s| digest(s, "digest")),
        }
    }
}

/// The mark of one repository.
#[derive(Debug)]
pub struct RepoMark {
    pub repo: RepoName,
    /// Manifests kept.
    pub kept: BTreeSet<Digest>,
    /// Linked manifests nothing keeps (only with `untagged`).
    pub unreached: BTreeSet<Digest>,
    /// When each unreached revision was linked (the store's time): a link
    /// written again since (the same manifest pushed again) keeps it.
    pub linked_at: HashMap<Digest, SystemTime>,
    /// Every blob the kept manifests need, the manifests themselves included.
    pub needed: BTreeSet<Digest>,
    /// The repository's layer links.
    pub layers: Vec<Digest>,
    /// The references of every manifest read.
    pub docs: HashMap<Digest, Refs>,
}

/// Reads (and remembers) what a manifest references; `None` when its blob
/// is missing or is not a manifest.
async fn refs_of(
    storage: &Arc<dyn Storage>,
    docs: &mut HashMap<Digest, Refs>,
    d: &Digest,
) -> Result<Option<Refs>> {
    if let Some(r) = docs.get(d) {
        return Ok(Some(r.clone()));
    }
    // A blob larger than any manifest is not one: it references nothing.
    // A failure to read stops the collection: without the manifest we
    // cannot know what it keeps.
    let bytes = match storage.blob_size(d).await? {
        Some(size) if size <= MAX_MANIFEST_SIZE => {
            storage.read_small_blob(d, MAX_MANIFEST_SIZE).await?
        }
        Some(_) => {
            tracing::warn!(digest = %d, "gc: a linked manifest is larger than any manifest; it keeps nothing");
            None
        }
        None => None,
    };
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    let refs = Refs::parse(&bytes);
    docs.insert(d.clone(), refs.clone());
    Ok(Some(refs))
}

/// Everything `root` keeps: itself, its blobs, its children recursively.
/// Adds kept manifests to `kept` and blobs to `needed`.
pub async fn close_over(
    storage: &Arc<dyn Storage>,
    docs: &mut HashMap<Digest, Refs>,
    root: &Digest,
    kept: &mut BTreeSet<Digest>,
    needed: &mut BTreeSet<Digest>,
) -> Result<()> {
    let mut todo = vec![root.clone()];
    while let Some(d) = todo.pop() {
        if !kept.insert(d.clone()) {
            continue;
        }
        needed.insert(d.clone());
        if let Some(refs) = refs_of(storage, docs, &d).await? {
            needed.extend(refs.blobs.iter().cloned());
            todo.extend(refs.children.iter().filter(|c| !kept.contains(*c)).cloned());
        }
    }
    Ok(())
}

/// The manifests the tags of `repo` point at now.
async fn tagged(storage: &Arc<dyn Storage>, repo: &RepoName) -> Result<BTreeSet<Digest>> {
    let mut out = BTreeSet::new();
    for tag in storage.list_tags(repo).await?.unwrap_or_default() {
        // A tag we cannot read might keep anything: stop.
        let t = tag.parse().map_err(|e| {
            StorageError::Corrupt(format!(
                "tag directory {tag:?} in {repo} is not a valid tag ({e})"
            ))
        })?;
        if let Some(d) = storage.resolve_tag(repo, &t).await? {
            out.insert(d);
        }
    }
    Ok(out)
}

/// Keeps what the tags of `m`'s repository reach now (a tag set through
/// another instance since the mark), right before its untagged manifests
/// are removed.
pub async fn tagged_since(
    storage: &Arc<dyn Storage>,
    m: &mut RepoMark,
    needed: &mut BTreeSet<Digest>,
) -> Result<()> {
    for d in tagged(storage, &m.repo).await? {
        if !m.kept.contains(&d) {
            close_over(storage, &mut m.docs, &d, &mut m.kept, needed).await?;
        }
    }
    Ok(())
}

/// Marks one repository. `young` is the time after which a revision counts
/// as just pushed (kept even when untagged).
pub async fn mark_repo(
    storage: &Arc<dyn Storage>,
    repo: RepoName,
    untagged: bool,
    young: SystemTime,
) -> Result<RepoMark> {
    let revisions = storage.list_manifests(&repo).await?;
    let layers = storage.list_layers(&repo).await?;
    let linked: BTreeSet<Digest> = revisions.iter().map(|r| r.digest.clone()).collect();
    let mut roots: BTreeSet<Digest> = BTreeSet::new();
    if untagged {
        roots.extend(tagged(storage, &repo).await?);
        roots.extend(
            revisions
                .iter()
                .filter(|r| r.linked >= young)
                .map(|r| r.digest.clone()),
        );
    } else {
        roots.extend(linked.iter().cloned());
    }
    let mut docs = HashMap::new();
    let (mut kept, mut needed) = (BTreeSet::new(), BTreeSet::new());
    for r in &roots {
        close_over(storage, &mut docs, r, &mut kept, &mut needed).await?;
    }
    // Referrers of kept manifests are kept, until nothing changes.
    let mut subjects: BTreeMap<Digest, Digest> = BTreeMap::new();
    for d in linked.difference(&kept) {
        if let Some(s) = refs_of(storage, &mut docs, d)
            .await?
            .and_then(|r| r.subject)
        {
            subjects.insert(d.clone(), s);
        }
    }
    loop {
        let next: Vec<Digest> = subjects
            .iter()
            .filter(|(d, s)| !kept.contains(*d) && kept.contains(*s))
            .map(|(d, _)| d.clone())
            .collect();
        if next.is_empty() {
            break;
        }
        for d in next {
            close_over(storage, &mut docs, &d, &mut kept, &mut needed).await?;
        }
    }
    let unreached: BTreeSet<Digest> = linked.difference(&kept).cloned().collect();
    let linked_at = revisions
        .into_iter()
        .filter(|r| unreached.contains(&r.digest))
        .map(|r| (r.digest, r.linked))
        .collect();
    Ok(RepoMark {
        repo,
        kept,
        unreached,
        linked_at,
        needed,
        layers,
        docs,
    })
}

/// Manifests linked since the mark (through another instance on shared
/// storage): every revision, in any repository, that the mark did not
/// keep is kept now with all it needs, except an unreached one (untagged,
/// about to be removed) whose link was not written again since the mark.
/// Returns how many there were.
pub async fn linked_since(
    storage: &Arc<dyn Storage>,
    marks: &mut [RepoMark],
    needed: &mut BTreeSet<Digest>,
) -> Result<usize> {
    let mut found = 0;
    for name in storage.list_repositories().await? {
        let Ok(repo) = name.parse::<RepoName>() else {
            continue;
        };
        let (mut docs, mut kept) = (HashMap::new(), BTreeSet::new());
        let mark = marks.iter_mut().find(|m| m.repo == repo);
        let none = HashMap::new();
        let (docs, kept, was) = match mark {
            Some(m) => (&mut m.docs, &mut m.kept, &m.linked_at),
            None => (&mut docs, &mut kept, &none),
        };
        for r in storage.list_manifests(&repo).await? {
            let relinked = was.get(&r.digest).is_none_or(|t| *t != r.linked);
            if !kept.contains(&r.digest) && relinked {
                close_over(storage, docs, &r.digest, kept, needed).await?;
                found += 1;
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_of_every_manifest_kind() {
        let d = |b: &[u8]| Digest::sha256_of(b);
        let (c, l, m, s) = (d(b"c"), d(b"l"), d(b"m"), d(b"s"));
        let image = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{c}","size":1}},"layers":[{{"digest":"{l}","size":1}}],"subject":{{"digest":"{s}","size":1}}}}"#
        );
        let r = Refs::parse(image.as_bytes());
        assert_eq!((r.blobs, r.subject), (vec![c.clone(), l.clone()], Some(s)));
        let index = format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{m}","size":1}}]}}"#);
        assert_eq!(Refs::parse(index.as_bytes()).children, vec![m]);
        let schema1 = format!(r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{l}"}}]}}"#);
        assert_eq!(Refs::parse(schema1.as_bytes()).blobs, vec![l]);
        assert!(Refs::parse(b"not json").blobs.is_empty());
    }
}
