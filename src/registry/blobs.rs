//! Blob endpoints: `GET`/`HEAD` (with single `Range` requests) and `DELETE`
//! of `/v2/<name>/blobs/<digest>`. Bodies stream from storage; a blob is
//! never held in memory.

use http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use http::{Method, StatusCode};

use super::error::RegistryError;
use super::storage::ByteRange;
use super::{HandlerResult, Registry, Request};
use crate::oci::digest::Digest;
use crate::oci::names::RepoName;
use crate::oci::response::{self, header};
use crate::oci::OciError;

/// Parses a `Range` header against a blob of `size` bytes.
///
/// `Ok(None)`: serve the whole blob (no header, or one we ignore as RFC 9110
/// allows: several ranges, another unit, or one that does not parse, such
/// as `bytes=abc`). `Err`: a valid range that is unsatisfiable (416).
pub fn parse_range(value: Option<&str>, size: u64) -> Result<Option<ByteRange>, RegistryError> {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let unsatisfiable = || Err(OciError::RangeNotSatisfiable { size }.into());
    let range = match (num(a), num(b)) {
        // bytes=-N: the last N bytes
        (None, Some(n)) if a.is_empty() => {
            if n == 0 || size == 0 {
                return unsatisfiable();
            }
            ByteRange {
                start: size.saturating_sub(n),
                end: size,
            }
        }
        // bytes=S-
        (Some(s), None) if b.is_empty() => {
            if s >= size {
                return unsatisfiable();
            }
            ByteRange {
                start: s,
                end: size,
            }
        }
        // bytes=S-E (inclusive); E < S is invalid syntax, ignored
        (Some(s), Some(e)) if s <= e => {
            if s >= size {
                return unsatisfiable();
            }
            ByteRange {
                start: s,
                end: e.saturating_add(1).min(size),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(range))
}

pub async fn get(reg: &Registry, repo: &RepoName, digest: &Digest, req: &Request) -> HandlerResult {
    let storage = reg.storage();
    // A client that finds the blob here may skip its upload and reference
    // it in a manifest: garbage collection must keep it from now on.
    reg.recent.touch([digest]).await;
    if !storage.layer_linked(repo, digest).await? {
        return Err(OciError::BlobUnknown(Some(digest.clone())).into());
    }
    let size = storage
        .blob_size(digest)
        .await?
        .ok_or_else(|| OciError::BlobUnknown(Some(digest.clone())))?;
    let range = parse_range(req.header(http::header::RANGE), size)?;

    if req.method == Method::GET {
        if let Some(url) = storage.blob_redirect(digest).await? {
            // The client fetches it from the store (sending its Range
            // there, if any); HEAD is still answered here.
            let mut resp = response::status(StatusCode::TEMPORARY_REDIRECT);
            let h = resp.headers_mut();
            h.insert("Docker-Content-Digest", header(&digest.to_string()));
            h.insert(http::header::LOCATION, header(&url));
            h.insert(http::header::CACHE_CONTROL, header("no-store"));
            return Ok(resp);
        }
    }

    let mut resp = response::status(StatusCode::OK);
    let h = resp.headers_mut();
    h.insert("Docker-Content-Digest", header(&digest.to_string()));
    h.insert(CONTENT_TYPE, header("application/octet-stream"));
    h.insert(ACCEPT_RANGES, header("bytes"));
    h.insert(http::header::ETAG, header(&format!("\"{digest}\"")));
    h.insert(http::header::CACHE_CONTROL, header("max-age=31536000"));
    let served = range.unwrap_or(ByteRange {
        start: 0,
        end: size,
    });
    h.insert(CONTENT_LENGTH, (served.end - served.start).into());
    if let Some(r) = range {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        resp.headers_mut().insert(
            CONTENT_RANGE,
            header(&format!("bytes {}-{}/{size}", r.start, r.end - 1)),
        );
    }
    if req.method == Method::HEAD {
        return Ok(resp);
    }
    let reader = storage
        .blob_reader(digest, range)
        .await?
        .ok_or_else(|| OciError::BlobUnknown(Some(digest.clone())))?;
    *resp.body_mut() = response::stream(reader.body);
    Ok(resp)
}

/// Removes the blob from this repository (its link); the content is
/// reclaimed by garbage collection once nothing references it.
pub async fn delete(reg: &Registry, repo: &RepoName, digest: &Digest) -> HandlerResult {
    if !reg.storage().unlink_layer(repo, digest).await? {
        return Err(OciError::BlobUnknown(Some(digest.clone())).into());
    }
    let mut resp = response::status(StatusCode::ACCEPTED);
    resp.headers_mut()
        .insert("Docker-Content-Digest", header(&digest.to_string()));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: u64, e: u64) -> Option<ByteRange> {
        Some(ByteRange { start: s, end: e })
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10).unwrap(), None);
        assert_eq!(parse_range(Some("bytes=0-4"), 10).unwrap(), r(0, 5));
        assert_eq!(parse_range(Some("bytes=5-"), 10).unwrap(), r(5, 10));
        assert_eq!(parse_range(Some("bytes=-3"), 10).unwrap(), r(7, 10));
        assert_eq!(parse_range(Some("bytes=-30"), 10).unwrap(), r(0, 10));
        assert_eq!(parse_range(Some("bytes=8-100"), 10).unwrap(), r(8, 10));
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10).unwrap(), None);
        assert_eq!(parse_range(Some("items=0-1"), 10).unwrap(), None);
        for bad in ["bytes=10-", "bytes=-0", "bytes=99-100"] {
            assert!(parse_range(Some(bad), 10).is_err(), "{bad}");
        }
        // RFC 9110: a Range that does not parse is ignored (200, whole blob).
        for ignored in [
            "bytes=5-2",
            "bytes=x-1",
            "bytes=-",
            "bytes=abc",
            "bytes=",
            "bytes=1-x",
        ] {
            assert_eq!(parse_range(Some(ignored), 10).unwrap(), None, "{ignored}");
        }
    }
}
