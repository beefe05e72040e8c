//! Manifest endpoints: `GET`/`HEAD`/`PUT`/`DELETE` of
//! `/v2/<name>/manifests/<reference>` for Docker schema2 manifests and
//! manifest lists, OCI image manifests and indexes, and OCI 1.1 artifacts
//! (`artifactType`, `subject`).
//!
//! Manifests are small (at most [`MAX_MANIFEST_SIZE`]) and are the one thing
//! read whole into memory. The stored bytes are returned exactly, with the
//! media type they declare.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{Method, StatusCode};
use serde::Deserialize;

use super::cache::Cached;
use super::error::RegistryError;
use super::{HandlerResult, Registry, Request};
use crate::oci::digest::{Algorithm, Digest};
use crate::oci::names::{Reference, RepoName};
use crate::oci::response::{self, header};
use crate::oci::OciError;

/// The largest manifest accepted, as in CNCF Distribution and the OCI spec.
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// A content descriptor inside a manifest.
#[derive(Debug, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default)]
    pub urls: Vec<String>,
}

/// The fields of a manifest or index that the registry looks at.
#[derive(Debug, Deserialize)]
pub struct ManifestDoc {
    #[serde(rename = "schemaVersion")]
    pub schema_version: Option<i64>,
    #[serde(rename = "mediaType")]
    pub media_type: Option<String>,
    #[serde(rename = "artifactType")]
    pub artifact_type: Option<String>,
    pub config: Option<Descriptor>,
    pub layers: Option<Vec<Descriptor>>,
    pub manifests: Option<Vec<Descriptor>>,
    pub subject: Option<Descriptor>,
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
    pub signatures: Option<serde_json::Value>,
}

impl ManifestDoc {
    pub fn parse(bytes: &[u8]) -> Result<ManifestDoc, OciError> {
        serde_json::from_slice(bytes).map_err(|e| {
            OciError::ManifestInvalid(format!("not a valid manifest JSON document: {e}"))
        })
    }

    /// The media type this manifest is served with: its own `mediaType`,
    /// else what its shape says.
    pub fn effective_media_type(&self) -> &str {
        match (&self.media_type, self.schema_version) {
            (Some(m), _) => m,
            (None, Some(1)) if self.signatures.is_some() => DOCKER_SCHEMA1_SIGNED,
            (None, Some(1)) => DOCKER_SCHEMA1,
            (None, _) if self.manifests.is_some() => OCI_INDEX,
            (None, _) => OCI_MANIFEST,
        }
    }

    /// `artifactType`, or for image manifests the config's media type (as
    /// the referrers API defines it).
    pub fn artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.as_str()))
    }
}

fn descriptor_digest(d: &Descriptor) -> Result<Digest, OciError> {
    if d.size < 0 {
        return Err(OciError::ManifestInvalid(format!(
            "descriptor {} has a negative size",
            d.digest
        )));
    }
    d.digest
        .parse()
        .map_err(|e| OciError::ManifestInvalid(format!("descriptor digest {:?}: {e}", d.digest)))
}

/// Media types without `;` parameters.
fn bare(ct: &str) -> &str {
    ct.split(';').next().unwrap_or(ct).trim()
}

/// Validates a pushed manifest's structure against its media type.
fn validate_shape(doc: &ManifestDoc, content_type: Option<&str>) -> Result<(), RegistryError> {
    let mt = doc.effective_media_type();
    if let Some(ct) = content_type.map(bare) {
        let known = [DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX];
        if doc.media_type.is_some() && known.contains(&ct) && ct != mt {
            return Err(OciError::ManifestInvalid(format!(
                "Content-Type {ct} does not match the manifest's mediaType {mt}"
            ))
            .into());
        }
    }
    if doc.schema_version != Some(2) {
        return Err(OciError::ManifestInvalid(
            "only schemaVersion 2 manifests are supported (Docker schema 1 is deprecated); push with a current client".into(),
        ).into());
    }
    match mt {
        DOCKER_MANIFEST | OCI_MANIFEST => {
            if doc.config.is_none() || doc.layers.is_none() {
                return Err(
                    OciError::ManifestInvalid(format!("{mt} needs `config` and `layers`")).into(),
                );
            }
        }
        DOCKER_LIST | OCI_INDEX => {
            if doc.manifests.is_none() {
                return Err(OciError::ManifestInvalid(format!("{mt} needs `manifests`")).into());
            }
        }
        other => {
            return Err(OciError::ManifestInvalid(format!(
                "unsupported manifest media type {other:?}"
            ))
            .into());
        }
    }
    Ok(())
}

/// Checks that every blob and child manifest the manifest references is in
/// this repository.
async fn check_references(
    reg: &Registry,
    repo: &RepoName,
    doc: &ManifestDoc,
) -> Result<(), RegistryError> {
    let storage = reg.storage();
    let blobs = doc.config.iter().chain(doc.layers.iter().flatten());
    for desc in blobs {
        let d = descriptor_digest(desc)?;
        // Foreign / non-distributable layers live elsewhere by design.
        if !desc.urls.is_empty()
            || desc.media_type.contains("foreign")
            || desc.media_type.contains("nondistributable")
        {
            continue;
        }
        let size = if storage.layer_linked(repo, &d).await? {
            storage.blob_size(&d).await?
        } else {
            None
        };
        match size {
            None => return Err(OciError::ManifestBlobUnknown(d).into()),
            Some(s) if s != desc.size as u64 => {
                return Err(OciError::ManifestInvalid(format!(
                    "blob {d} has {s} bytes but the manifest says {}",
                    desc.size
                ))
                .into())
            }
            Some(_) => {}
        }
    }
    for child in doc.manifests.iter().flatten() {
        let d = descriptor_digest(child)?;
        if !storage.manifest_linked(repo, &d).await? {
            return Err(OciError::ManifestBlobUnknown(d).into());
        }
    }
    if let Some(s) = &doc.subject {
        descriptor_digest(s)?;
    }
    Ok(())
}

/// Reads a request body of at most `limit` bytes.
async fn read_limited(req: &mut Request, limit: u64) -> Result<Bytes, RegistryError> {
    let too_large = OciError::ManifestTooLarge { limit };
    if let Some(len) = req
        .header(CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit {
            return Err(too_large.into());
        }
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = req.body.next().await {
        let chunk = chunk
            .map_err(|e| OciError::ManifestInvalid(format!("reading the body failed: {e}")))?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(too_large.into());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Drops the cached answers of a repository when dropped itself: at the
/// end of a change, also one cut short by an error.
struct Invalidate<'a>(&'a Registry, &'a RepoName);

impl Drop for Invalidate<'_> {
    fn drop(&mut self) {
        self.0.manifests.invalidate(self.1);
    }
}

/// Resolves a reference to a manifest digest linked in `repo`.
async fn resolve(
    reg: &Registry,
    repo: &RepoName,
    reference: &Reference,
) -> Result<Digest, RegistryError> {
    let storage = reg.storage();
    let found = match reference {
        Reference::Tag(t) => storage.resolve_tag(repo, t).await?,
        Reference::Digest(d) => storage.manifest_linked(repo, d).await?.then(|| d.clone()),
    };
    match found {
        Some(d) => Ok(d),
        None => Err(unknown(reg, repo).await),
    }
}

/// The error for a missing manifest: `NAME_UNKNOWN` when the whole
/// repository is missing, else `MANIFEST_UNKNOWN`.
async fn unknown(reg: &Registry, repo: &RepoName) -> RegistryError {
    match reg.storage().repository_exists(repo).await {
        Ok(false) => OciError::NameUnknown.into(),
        Ok(true) => OciError::ManifestUnknown.into(),
        Err(e) => e.into(),
    }
}

/// Reads a linked manifest's bytes and media type.
async fn load(reg: &Registry, d: Digest) -> Result<Cached, RegistryError> {
    let bytes = reg
        .storage()
        .read_small_blob(&d, MAX_MANIFEST_SIZE)
        .await?
        .ok_or(OciError::ManifestUnknown)?;
    let media_type = ManifestDoc::parse(&bytes)
        .map(|doc| doc.effective_media_type().to_string())
        .unwrap_or_else(|_| OCI_MANIFEST.to_string());
    Ok(Cached {
        digest: d,
        bytes,
        media_type,
    })
}

/// `GET`/`HEAD /v2/<name>/manifests/<reference>`
pub async fn get(
    reg: &Registry,
    repo: &RepoName,
    reference: &Reference,
    req: &Request,
) -> HandlerResult {
    let Cached {
        digest: d,
        bytes,
        media_type,
    } = if reg.storage().shared() {
        // Other instances change tags and links behind our back: resolve
        // from storage every time, and cache only content, by digest.
        let d = resolve(reg, repo, reference).await?;
        let key = Reference::Digest(d.clone());
        match reg.manifests.get(repo, &key) {
            Some(hit) => hit,
            None => {
                let since = reg.manifests.generation();
                let found = load(reg, d).await?;
                reg.manifests.insert(repo, &key, since, found.clone());
                found
            }
        }
    } else {
        match reg.manifests.get(repo, reference) {
            Some(hit) => hit,
            None => {
                let since = reg.manifests.generation();
                let d = resolve(reg, repo, reference).await?;
                let found = load(reg, d).await?;
                reg.manifests.insert(repo, reference, since, found.clone());
                found
            }
        }
    };
    let mut resp = response::status(StatusCode::OK);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, header(&media_type));
    h.insert(CONTENT_LENGTH, bytes.len().into());
    h.insert("Docker-Content-Digest", header(&d.to_string()));
    h.insert(http::header::ETAG, header(&format!("\"{d}\"")));
    if req.method != Method::HEAD {
        *resp.body_mut() = response::full(bytes);
    }
    Ok(resp)
}

/// `PUT /v2/<name>/manifests/<reference>`
pub async fn put(
    reg: &Registry,
    repo: &RepoName,
    reference: &Reference,
    mut req: Request,
) -> HandlerResult {
    let bytes = read_limited(&mut req, MAX_MANIFEST_SIZE).await?;
    let doc = ManifestDoc::parse(&bytes)?;
    validate_shape(&doc, req.header(CONTENT_TYPE))?;
    let algorithm = match reference {
        Reference::Digest(d) => d.algorithm(),
        Reference::Tag(_) => Algorithm::Sha256,
    };
    let digest = Digest::of(algorithm, &bytes);
    if let Reference::Digest(expected) = reference {
        if expected != &digest {
            return Err(OciError::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            }
            .into());
        }
    }
    // Recorded before the checks, so a garbage collection running now
    // either keeps what this manifest needs or has deleted it before we
    // look (then the push is refused as MANIFEST_BLOB_UNKNOWN, not broken).
    let refs = super::gc::mark::Refs::parse(&bytes);
    reg.recent
        .touch(
            std::iter::once(&digest)
                .chain(&refs.blobs)
                .chain(&refs.children),
        )
        .await;
    check_references(reg, repo, &doc).await?;

    let storage = reg.storage();
    // Content first, then the links that make it visible; cached answers
    // of this repository are dropped whether or not every step succeeds.
    let _invalidate = Invalidate(reg, repo);
    storage.write_small_blob(&digest, bytes.clone()).await?;
    // Several instances: a sweep running elsewhere must not take this
    // manifest or what it needs (before any tag points at it; see
    // `gc::doomed`).
    super::gc::doomed::link_checked(reg, repo, &digest, bytes, refs).await?;
    let subject = match &doc.subject {
        Some(s) => Some(descriptor_digest(s)?),
        None => None,
    };
    if let Some(s) = &subject {
        storage.add_referrer(repo, s, &digest).await?;
    }
    if let Reference::Tag(t) = reference {
        storage.set_tag(repo, t, &digest).await?;
    }

    let mut resp = response::status(StatusCode::CREATED);
    let h = resp.headers_mut();
    h.insert(
        LOCATION,
        header(&format!("{}/v2/{repo}/manifests/{digest}", req.base_url)),
    );
    h.insert("Docker-Content-Digest", header(&digest.to_string()));
    if let Some(s) = subject {
        h.insert("OCI-Subject", header(&s.to_string()));
    }
    Ok(resp)
}

/// `DELETE /v2/<name>/manifests/<reference>`: by digest removes the manifest
/// and the tags pointing to it; by tag removes only the tag.
pub async fn delete(reg: &Registry, repo: &RepoName, reference: &Reference) -> HandlerResult {
    let storage = reg.storage();
    let _invalidate = Invalidate(reg, repo);
    match reference {
        Reference::Tag(t) => {
            if !storage.delete_tag(repo, t).await? {
                return Err(unknown(reg, repo).await);
            }
        }
        Reference::Digest(d) => {
            if !storage.manifest_linked(repo, d).await? {
                return Err(unknown(reg, repo).await);
            }
            let subject = storage
                .read_small_blob(d, MAX_MANIFEST_SIZE)
                .await?
                .and_then(|b| ManifestDoc::parse(&b).ok())
                .and_then(|doc| doc.subject)
                .and_then(|s| s.digest.parse::<Digest>().ok());
            if let Some(s) = subject {
                storage.remove_referrer(repo, &s, d).await?;
            }
            storage.unlink_manifest(repo, d).await?;
        }
    }
    Ok(response::status(StatusCode::ACCEPTED))
}

#[cfg(test)]
mod tests;
