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

use crate::oci::digest::Digest;
use crate::oci::names::RepoName;
use crate::registry::manifests::{ManifestDoc, MAX_MANIFEST_SIZE};
use crate::registry::storage::{Result, Storage};

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
    pub fn of(doc: &ManifestDoc) -> Refs {
        let parse = |s: &str| s.parse::<Digest>().ok();
        Refs {
            blobs: doc
                .config
                .iter()
                .chain(doc.layers.iter().flatten())
                .filter_map(|d| parse(&d.digest))
                .collect(),
            children: doc
                .manifests
                .iter()
                .flatten()
                .filter_map(|d| parse(&d.digest))
                .collect(),
            subject: doc.subject.as_ref().and_then(|s| parse(&s.digest)),
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
    let Some(bytes) = storage
        .read_small_blob(d, MAX_MANIFEST_SIZE)
        .await
        .or_else(|e| {
            // A blob too large to be a manifest is not one.
            tracing::warn!(digest = %d, error = %e, "gc: cannot read manifest");
            Ok::<_, crate::registry::storage::StorageError>(None)
        })?
    else {
        return Ok(None);
    };
    let refs = ManifestDoc::parse(&bytes)
        .map(|doc| Refs::of(&doc))
        .unwrap_or_default();
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
        for tag in storage.list_tags(&repo).await?.unwrap_or_default() {
            let Ok(t) = tag.parse() else { continue };
            if let Some(d) = storage.resolve_tag(&repo, &t).await? {
                roots.insert(d);
            }
        }
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
    let unreached = linked.difference(&kept).cloned().collect();
    Ok(RepoMark {
        repo,
        kept,
        unreached,
        needed,
        layers,
        docs,
    })
}
