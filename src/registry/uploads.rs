//! Blob uploads: `POST` (start, monolithic, cross-repository mount) on
//! `/v2/<name>/blobs/uploads/`, and `PATCH`/`PUT`/`GET`/`DELETE` on an upload
//! session.
//!
//! The body streams to storage while it is hashed; the running sha256 state
//! is kept in memory between chunks. After a restart (or when the chunks
//! came through another instance on shared storage) it is not there, and
//! the storage hashes the stored data at commit, so uploads survive
//! restarts and may move between instances.
//! One lock per upload orders concurrent requests on the same session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::header::{CONTENT_LENGTH, LOCATION, RANGE};
use http::{Method, StatusCode};

use super::error::RegistryError;
use super::storage::StorageError;
use super::{HandlerResult, Registry, Request};
use crate::auth::Authorized;
use crate::oci::digest::{Algorithm, Digest, Hasher};
use crate::oci::names::{RepoName, UploadId};
use crate::oci::response::{self, header};
use crate::oci::OciError;

/// Upload sessions whose state is cached; past this, idle entries are
/// dropped (they only cost a re-hash if the upload resumes).
const MAX_CACHED_STATES: usize = 4096;

/// What we remember about an upload between requests.
#[derive(Default)]
pub(super) struct UploadState {
    /// sha256 over the first `size` bytes, if known.
    hashed: Option<(u64, Hasher)>,
    /// The largest size this process saw the upload have: on shared
    /// storage the next `PATCH` reads only what was stored from there.
    seen: u64,
}

#[derive(Default)]
pub struct UploadStates {
    map: Mutex<HashMap<UploadId, Arc<tokio::sync::Mutex<UploadState>>>>,
}

impl UploadStates {
    pub(super) fn entry(&self, id: UploadId) -> Arc<tokio::sync::Mutex<UploadState>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED_STATES && !map.contains_key(&id) {
            map.retain(|_, s| Arc::strong_count(s) > 1);
        }
        map.entry(id).or_default().clone()
    }

    pub(super) fn forget(&self, id: UploadId) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

fn upload_url(req: &Request, repo: &RepoName, id: UploadId) -> String {
    format!("{}/v2/{repo}/blobs/uploads/{id}", req.base_url)
}

fn blob_url(req: &Request, repo: &RepoName, d: &Digest) -> String {
    format!("{}/v2/{repo}/blobs/{d}", req.base_url)
}

/// `202 Accepted` (or `204` for status) describing an upload in progress.
fn in_progress(
    code: StatusCode,
    req: &Request,
    repo: &RepoName,
    id: UploadId,
    size: u64,
) -> HandlerResult {
    let mut resp = response::status(code);
    let h = resp.headers_mut();
    h.insert(LOCATION, header(&upload_url(req, repo, id)));
    h.insert(RANGE, header(&format!("0-{}", size.saturating_sub(1))));
    h.insert("Docker-Upload-UUID", header(&id.to_string()));
    Ok(resp)
}

fn created(req: &Request, repo: &RepoName, d: &Digest) -> HandlerResult {
    let mut resp = response::status(StatusCode::CREATED);
    let h = resp.headers_mut();
    h.insert(LOCATION, header(&blob_url(req, repo, d)));
    h.insert("Docker-Content-Digest", header(&d.to_string()));
    Ok(resp)
}

fn digest_param(req: &Request) -> Result<Option<Digest>, OciError> {
    req.query
        .get("digest")
        .map(|s| {
            s.parse().map_err(|e: crate::oci::digest::DigestError| {
                OciError::DigestInvalid(e.to_string())
            })
        })
        .transpose()
}

/// `POST /v2/<name>/blobs/uploads/`
pub async fn start(
    reg: &Registry,
    access: &Authorized,
    repo: &RepoName,
    req: Request,
) -> HandlerResult {
    let storage = reg.storage();
    // Cross-repository mount. Any problem (bad parameters, no access to the
    // source, blob missing) falls back to a normal upload, revealing nothing.
    if let (Some(mount), Some(from)) = (req.query.get("mount"), req.query.get("from")) {
        if let (Ok(d), Ok(from)) = (mount.parse::<Digest>(), from.parse::<RepoName>()) {
            // Recorded before the checks, so a garbage collection either
            // keeps the blob or has deleted it before we look.
            reg.recent.touch([&d]).await;
            if access.may_mount_from(&from)
                && storage.layer_linked(&from, &d).await?
                && storage.blob_size(&d).await?.is_some()
            {
                storage.link_layer(repo, &d).await?;
                return created(&req, repo, &d);
            }
        }
    }
    let digest = digest_param(&req)?;
    let id = UploadId::new();
    storage.upload_create(repo, id).await?;
    match digest {
        // Monolithic upload: the whole blob in this request.
        Some(d) => {
            let state = reg.uploads.entry(id);
            let mut state = state.lock().await;
            let result = finish(reg, repo, id, &mut state, &d, req).await;
            reg.uploads.forget(id);
            if result.is_err() {
                storage.upload_delete(repo, id).await?;
            }
            result
        }
        None => in_progress(StatusCode::ACCEPTED, &req, repo, id, 0),
    }
}

/// `GET`/`HEAD`/`PATCH`/`PUT`/`DELETE /v2/<name>/blobs/uploads/<uuid>`
pub async fn handle(reg: &Registry, repo: &RepoName, id: UploadId, req: Request) -> HandlerResult {
    let state = reg.uploads.entry(id);
    let mut state = state.lock().await;
    let storage = reg.storage();
    let size = if req.method == Method::PATCH {
        storage.upload_size_from(repo, id, state.seen).await?
    } else {
        storage.upload_size(repo, id).await?
    };
    let Some(size) = size else {
        reg.uploads.forget(id);
        return Err(OciError::BlobUploadUnknown.into());
    };
    state.seen = state.seen.max(size);
    let result = handle_existing(reg, repo, id, &mut state, size, req).await;
    if let Err(RegistryError::Storage(StorageError::UploadUnknown(_))) = &result {
        // Deleted through another instance while this request ran.
        reg.uploads.forget(id);
    }
    result
}

/// [`handle`] for an upload that existed when the request began.
async fn handle_existing(
    reg: &Registry,
    repo: &RepoName,
    id: UploadId,
    state: &mut UploadState,
    size: u64,
    mut req: Request,
) -> HandlerResult {
    let storage = reg.storage();
    match req.method {
        // HEAD answers as GET (RFC 9110); the front drops the (empty) body.
        Method::GET | Method::HEAD => in_progress(StatusCode::NO_CONTENT, &req, repo, id, size),
        Method::DELETE => {
            storage.upload_delete(repo, id).await?;
            reg.uploads.forget(id);
            Ok(response::status(StatusCode::NO_CONTENT))
        }
        Method::PATCH => {
            let size = append(reg, repo, id, state, size, &mut req).await?;
            in_progress(StatusCode::ACCEPTED, &req, repo, id, size)
        }
        _ => {
            let d = digest_param(&req)?.ok_or_else(|| {
                OciError::DigestInvalid("the final PUT of an upload needs ?digest=".into())
            })?;
            let result = finish(reg, repo, id, state, &d, req).await;
            if result.is_ok() {
                reg.uploads.forget(id);
            }
            result
        }
    }
}

/// Checks `Content-Range` / `Content-Length` of a chunk against the upload.
fn check_chunk(req: &Request, size: u64) -> Result<(), RegistryError> {
    let length = match req.header(CONTENT_LENGTH) {
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| OciError::SizeInvalid("Content-Length is not a number".into()))?,
        ),
        None => None,
    };
    let Some(cr) = req.header(http::header::CONTENT_RANGE) else {
        return Ok(());
    };
    // OCI form `<start>-<end>`; also tolerate `bytes <start>-<end>/<total>`.
    let spec = cr.trim().trim_start_matches("bytes").trim();
    let spec = spec.split('/').next().unwrap_or(spec);
    let (s, e) = spec
        .split_once('-')
        .and_then(|(s, e)| Some((s.trim().parse::<u64>().ok()?, e.trim().parse::<u64>().ok()?)))
        .ok_or_else(|| OciError::BlobUploadInvalid(format!("malformed Content-Range {cr:?}")))?;
    if s != size {
        return Err(OciError::ChunkOutOfOrder { start: s, size }.into());
    }
    if e < s {
        return Err(OciError::BlobUploadInvalid(format!(
            "Content-Range {cr:?} ends before it starts"
        ))
        .into());
    }
    if let Some(len) = length {
        if len != e - s + 1 {
            return Err(OciError::SizeInvalid(format!(
                "Content-Range {cr:?} does not match Content-Length {len}"
            ))
            .into());
        }
    }
    Ok(())
}

/// Appends the request body; returns the new size.
async fn append(
    reg: &Registry,
    repo: &RepoName,
    id: UploadId,
    state: &mut UploadState,
    size: u64,
    req: &mut Request,
) -> Result<u64, RegistryError> {
    check_chunk(req, size)?;
    if req.body_is_empty {
        return Ok(size);
    }
    let hasher = match state.hashed.take() {
        Some((n, h)) if n == size => Some(h),
        _ if size == 0 => Some(Algorithm::Sha256.hasher()),
        _ => None,
    };
    let body = std::mem::replace(&mut req.body, Box::pin(futures_util::stream::empty()));
    let appended = reg
        .storage()
        .upload_append(repo, id, size, hasher, body)
        .await?;
    state.hashed = appended.hasher.map(|h| (appended.size, h));
    state.seen = state.seen.max(appended.size);
    if let Some(e) = appended.client_error {
        return Err(OciError::BlobUploadInvalid(format!(
            "the request body ended early ({e}); {} bytes are stored, resume from there",
            appended.size
        ))
        .into());
    }
    Ok(appended.size)
}

/// Appends a final chunk (if any), verifies the digest and commits the blob.
async fn finish(
    reg: &Registry,
    repo: &RepoName,
    id: UploadId,
    state: &mut UploadState,
    expected: &Digest,
    mut req: Request,
) -> HandlerResult {
    let storage = reg.storage();
    let size = storage
        .upload_size(repo, id)
        .await?
        .ok_or(OciError::BlobUploadUnknown)?;
    let size = append(reg, repo, id, state, size, &mut req).await?;
    let known = match &state.hashed {
        Some((n, h)) if *n == size && expected.algorithm() == Algorithm::Sha256 => {
            Some(h.clone().finish())
        }
        _ => None,
    };
    reg.recent.touch([expected]).await;
    let mismatch = match known {
        Some(actual) if &actual != expected => Some(actual),
        Some(_) => {
            storage.upload_commit(repo, id, expected).await?;
            None
        }
        // The hash is not in this process's memory (a restart, or the
        // chunks came through another instance): the backend hashes the
        // content on its way into the blob.
        None => storage.upload_commit_verified(repo, id, expected).await?,
    };
    if let Some(actual) = mismatch {
        return Err(OciError::DigestMismatch {
            expected: expected.clone(),
            actual,
        }
        .into());
    }
    created(&req, repo, expected)
}
