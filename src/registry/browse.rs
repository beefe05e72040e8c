//! What the web UI shows, read from storage as typed values: the catalog,
//! a repository's tags (digest, size, created time, platforms of an index,
//! referrers) and the storage it uses; and the UI's one change, deleting a
//! tag or a manifest.
//!
//! Each call takes the [`Authorized`] proof of the request it serves, and
//! reads only the repository that proof names, for the action it grants:
//! the UI reaches storage through the same gate as the API.

use std::collections::{BTreeSet, HashMap};
use std::time::SystemTime;

use serde_json::Value;

use super::error::RegistryError;
use super::gc::{mark, GcOptions, GcReport};
use super::manifests::{self, ManifestDoc, MAX_MANIFEST_SIZE};
use super::storage::Storage;
use super::Registry;
use crate::auth::Authorized;
use crate::oci::digest::Digest;
use crate::oci::names::{Reference, RepoName};
use crate::oci::{Action, OciError, Route};

/// One image of a multi-arch index.
#[derive(Debug, Clone)]
pub struct PlatformView {
    /// `linux/arm/v6`, or `unknown` when the index does not say.
    pub platform: String,
    pub digest: Digest,
    /// Manifest, config and layers.
    pub size: u64,
    pub created: Option<String>,
}

/// A manifest whose `subject` is another (a signature, an SBOM).
#[derive(Debug, Clone)]
pub struct ReferrerView {
    pub digest: Digest,
    pub artifact_type: Option<String>,
    pub size: u64,
}

/// A tag (or a manifest by digest) as the UI lists it.
#[derive(Debug, Clone)]
pub struct ManifestView {
    /// The tag, or `None` for a manifest named by digest.
    pub tag: Option<String>,
    pub digest: Digest,
    pub media_type: String,
    /// The manifest and everything it references (all platforms of an
    /// index), as pushed (compressed layers).
    pub size: u64,
    /// From the image config (the first platform's, for an index).
    pub created: Option<String>,
    /// Empty unless this is an index.
    pub platforms: Vec<PlatformView>,
    pub layers: usize,
    /// The platform of a single image (from its config).
    pub platform: Option<String>,
    pub referrers: Vec<ReferrerView>,
}

/// A repository page: its tags and the storage it uses.
#[derive(Debug, Clone)]
pub struct RepoView {
    pub name: RepoName,
    pub tags: Vec<ManifestView>,
    /// Distinct blobs the repository's manifests need, and their bytes.
    pub blobs: u64,
    pub bytes: u64,
}

/// The distinct children of an index whose manifests and configs a page
/// reads (the rest show the index's own size and no time).
const MAX_CHILDREN_READ: usize = 256;

/// The proof does not fit the call: a bug in the caller, refused as if the
/// repository were not there.
fn misrouted() -> RegistryError {
    OciError::NameUnknown.into()
}

impl Registry {
    /// The repositories the caller may pull, sorted (a `Catalog` proof).
    pub async fn browse_catalog(&self, access: &Authorized) -> Result<Vec<String>, RegistryError> {
        if !matches!(access.route(), Route::Catalog) {
            return Err(misrouted());
        }
        Ok(self
            .storage()
            .list_repositories()
            .await?
            .into_iter()
            .filter(|r| r.parse::<RepoName>().is_ok_and(|r| access.may_list(&r)))
            .collect())
    }

    /// A repository's tags with their details and its storage use (a
    /// `Tags` proof for pull).
    pub async fn browse_repository(&self, access: &Authorized) -> Result<RepoView, RegistryError> {
        let (Route::Tags(repo), Some(Action::Pull)) = (access.route(), access.action()) else {
            return Err(misrouted());
        };
        let storage = self.storage();
        let names = storage
            .list_tags(repo)
            .await?
            .ok_or(OciError::NameUnknown)?;
        let mut tags = Vec::with_capacity(names.len());
        // Many tags may name one manifest: it (and its referrers) is read
        // once.
        let mut views: HashMap<Digest, Option<ManifestView>> = HashMap::new();
        for name in names {
            let Ok(tag) = name.parse() else { continue };
            let Some(digest) = storage.resolve_tag(repo, &tag).await? else {
                continue;
            };
            let view = match views.get(&digest) {
                Some(v) => v.clone(),
                None => {
                    let v = manifest_view(storage, repo, &digest).await?;
                    views.insert(digest, v.clone());
                    v
                }
            };
            if let Some(mut view) = view {
                view.tag = Some(name);
                tags.push(view);
            }
        }
        let m = mark::mark_repo(storage, repo.clone(), false, SystemTime::now()).await?;
        let (mut blobs, mut bytes) = (0, 0);
        for d in &m.needed {
            if let Some(n) = storage.blob_size(d).await? {
                blobs += 1;
                bytes += n;
            }
        }
        Ok(RepoView {
            name: repo.clone(),
            tags,
            blobs,
            bytes,
        })
    }

    /// One manifest, by tag or digest (a `Manifest` proof for pull).
    pub async fn browse_manifest(
        &self,
        access: &Authorized,
    ) -> Result<ManifestView, RegistryError> {
        let (Route::Manifest(repo, reference), Some(Action::Pull)) =
            (access.route(), access.action())
        else {
            return Err(misrouted());
        };
        let storage = self.storage();
        let (tag, digest) = match reference {
            Reference::Tag(t) => (
                Some(t.to_string()),
                storage
                    .resolve_tag(repo, t)
                    .await?
                    .ok_or(OciError::ManifestUnknown)?,
            ),
            Reference::Digest(d) if storage.manifest_linked(repo, d).await? => (None, d.clone()),
            Reference::Digest(_) => return Err(OciError::ManifestUnknown.into()),
        };
        let mut view = manifest_view(storage, repo, &digest)
            .await?
            .ok_or(OciError::ManifestUnknown)?;
        view.tag = tag;
        Ok(view)
    }

    /// Runs a garbage collection for an admin (any proof whose caller
    /// [`Authorized::is_admin`]), as [`Registry::gc`] does; anyone else is
    /// told there is nothing here. A real run (not a dry run) must name
    /// the dry run it confirms ([`Registry::gc_confirmed`]); `Ok(None)`:
    /// it does not, nothing was done.
    pub async fn gc_for(
        &self,
        access: &Authorized,
        options: GcOptions,
        confirms: &str,
    ) -> Result<Option<GcReport>, RegistryError> {
        if !access.is_admin() {
            return Err(OciError::NotFound.into());
        }
        if options.dry_run {
            return Ok(Some(self.gc(options).await?));
        }
        Ok(self.gc_confirmed(options, confirms).await?)
    }

    /// Deletes a tag, or a manifest and its tags (a `Manifest` proof for
    /// delete), as `DELETE /v2/<name>/manifests/<reference>` does.
    pub async fn delete_manifest(&self, access: &Authorized) -> Result<(), RegistryError> {
        let (Route::Manifest(repo, reference), Some(Action::Delete)) =
            (access.route(), access.action())
        else {
            return Err(misrouted());
        };
        manifests::delete(self, repo, reference).await.map(|_| ())
    }
}

async fn read_json(storage: &std::sync::Arc<dyn Storage>, d: &Digest) -> Option<Value> {
    let bytes = storage.read_small_blob(d, MAX_MANIFEST_SIZE).await.ok()??;
    serde_json::from_slice(&bytes).ok()
}

fn digests(doc: &Value, key: &str) -> Vec<(Digest, u64, Value)> {
    doc.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let digest = d.get("digest")?.as_str()?.parse().ok()?;
            let size = d.get("size")?.as_u64()?;
            Some((digest, size, d.clone()))
        })
        .collect()
}

/// What an image manifest and its config say.
struct ImageFacts {
    /// The manifest, config and layers.
    size: u64,
    layers: usize,
    created: Option<String>,
    /// From the config's `os`, `architecture` and `variant`.
    platform: Option<String>,
}

async fn image_facts(storage: &std::sync::Arc<dyn Storage>, doc: &Value, own: u64) -> ImageFacts {
    let config = doc.get("config").and_then(|c| {
        let d: Digest = c.get("digest")?.as_str()?.parse().ok()?;
        Some((d, c.get("size")?.as_u64()?))
    });
    let layers = digests(doc, "layers");
    // Sizes are what the manifest says (foreign layers and index entries
    // are not checked against a blob): add without overflowing.
    let size = (layers.iter().map(|l| l.1))
        .chain(config.as_ref().map(|c| c.1))
        .fold(own, u64::saturating_add);
    let mut facts = ImageFacts {
        size,
        layers: layers.len(),
        created: None,
        platform: None,
    };
    if let Some((d, _)) = &config {
        if let Some(c) = read_json(storage, d).await {
            facts.created = c.get("created").and_then(Value::as_str).map(str::to_string);
            facts.platform = platform_of(Some(&c));
        }
    }
    facts
}

/// `os/architecture[/variant]` of an index entry's `platform` or an image
/// config.
fn platform_of(p: Option<&Value>) -> Option<String> {
    let field = |k: &str| p.and_then(|p| p.get(k)).and_then(Value::as_str);
    let (os, arch) = (field("os")?, field("architecture")?);
    Some(match field("variant") {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    })
}

/// What the UI shows of one linked manifest; `None` when its blob is
/// missing or not JSON.
async fn manifest_view(
    storage: &std::sync::Arc<dyn Storage>,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Option<ManifestView>, RegistryError> {
    let Some(bytes) = storage.read_small_blob(digest, MAX_MANIFEST_SIZE).await? else {
        return Ok(None);
    };
    let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(None);
    };
    let media_type = ManifestDoc::parse(&bytes)
        .map(|d| d.effective_media_type().to_string())
        .unwrap_or_default();
    let own = bytes.len() as u64;
    let mut view = ManifestView {
        tag: None,
        digest: digest.clone(),
        media_type,
        size: own,
        created: None,
        platforms: Vec::new(),
        layers: 0,
        platform: None,
        referrers: Vec::new(),
    };
    if doc.get("manifests").is_some() {
        let mut seen = BTreeSet::new();
        for (d, size, desc) in digests(&doc, "manifests") {
            // Each child is read once, and only the first few: an index
            // may repeat one large child thousands of times.
            let read = seen.len() < MAX_CHILDREN_READ && seen.insert(d.clone());
            let child = if read {
                read_json(storage, &d).await
            } else {
                None
            };
            let (child_size, created) = match child {
                Some(child) => {
                    let f = image_facts(storage, &child, size).await;
                    (f.size, f.created)
                }
                None => (size, None),
            };
            view.size = view.size.saturating_add(child_size);
            view.platforms.push(PlatformView {
                platform: platform_of(desc.get("platform")).unwrap_or_else(|| "unknown".into()),
                digest: d,
                size: child_size,
                created,
            });
        }
        view.created = view.platforms.iter().find_map(|p| p.created.clone());
    } else {
        let f = image_facts(storage, &doc, own).await;
        view.size = f.size;
        view.layers = f.layers;
        view.created = f.created;
        view.platform = f.platform;
    }
    for d in storage.list_referrers(repo, digest).await? {
        if !storage.manifest_linked(repo, &d).await? {
            continue;
        }
        let Some(b) = storage.read_small_blob(&d, MAX_MANIFEST_SIZE).await? else {
            continue;
        };
        let artifact_type = ManifestDoc::parse(&b)
            .ok()
            .and_then(|m| m.artifact_type().map(str::to_string));
        view.referrers.push(ReferrerView {
            digest: d,
            artifact_type,
            size: b.len() as u64,
        });
    }
    Ok(Some(view))
}
