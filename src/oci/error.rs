//! The protocol's errors: every OCI / Docker error code regproxy answers
//! with, and their single mapping to the error JSON
//! (`{"errors":[{"code":...,"message":...,"detail":...}]}`) and an HTTP status.
//!
//! Whether an error is the client's fault (4xx) or ours (5xx) is decided here,
//! by the variant, never at call sites. Layers above keep their own error
//! types (with causes, for the log) and convert to [`OciError`] once.
//!
//! The codes are the distribution-spec v1.1 list (`BLOB_UNKNOWN` ...
//! `TOOMANYREQUESTS`) plus four that CNCF Distribution sends in the same
//! places, kept for Docker's sake: `RANGE_INVALID` (416), `PAGINATION_NUMBER_INVALID`
//! (a bad `n`), `UNKNOWN` (500/507) and `UNAVAILABLE` (503, in `auth`). An
//! invalid tag in a manifest path is `404 MANIFEST_UNKNOWN`, as the spec's
//! endpoint table and Distribution answer; `TAG_INVALID` is never sent.

use http::StatusCode;

use super::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("blob unknown to registry")]
    BlobUnknown(Option<Digest>),
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    #[error("chunk out of order: the upload has {size} bytes, the chunk starts at {start}")]
    ChunkOutOfOrder { start: u64, size: u64 },
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    #[error("blob upload unknown to registry")]
    BlobUploadUnknown,
    #[error("provided digest did not match uploaded content")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("invalid digest: {0}")]
    DigestInvalid(String),
    #[error("manifest references a blob or manifest unknown to this repository")]
    ManifestBlobUnknown(Digest),
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("manifest unknown")]
    ManifestUnknown,
    #[error("manifest is larger than the {limit}-byte limit")]
    ManifestTooLarge { limit: u64 },
    #[error("invalid repository name: {0}")]
    NameInvalid(String),
    #[error("repository name not known to registry")]
    NameUnknown,
    #[error("invalid tag: {0}")]
    TagInvalid(String),
    #[error("{0}")]
    SizeInvalid(String),
    #[error("invalid pagination parameter: {0}")]
    PaginationInvalid(String),
    #[error("no such endpoint")]
    NotFound,
    #[error("method {method} is not supported on this endpoint (allowed: {allow})")]
    MethodNotAllowed {
        method: http::Method,
        allow: &'static str,
    },
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The disk (or quota) is full.
    #[error("registry storage is full; ask the operator to free space")]
    StorageFull,
    /// Storage failed; the cause was logged by the layer that saw it.
    #[error("internal storage error; see the registry log")]
    StorageFailed,
    /// The storage (an object store) did not answer; the cause was logged.
    #[error("registry storage is unavailable; retry later, and tell the operator if it persists")]
    StorageUnavailable,
}

impl OciError {
    /// The OCI / Docker error code.
    pub fn code(&self) -> &'static str {
        use OciError::*;
        match self {
            BlobUnknown(_) => "BLOB_UNKNOWN",
            BlobUploadInvalid(_) | ChunkOutOfOrder { .. } => "BLOB_UPLOAD_INVALID",
            RangeNotSatisfiable { .. } => "RANGE_INVALID",
            BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            DigestMismatch { .. } | DigestInvalid(_) => "DIGEST_INVALID",
            ManifestBlobUnknown(_) => "MANIFEST_BLOB_UNKNOWN",
            ManifestInvalid(_) => "MANIFEST_INVALID",
            ManifestUnknown => "MANIFEST_UNKNOWN",
            ManifestTooLarge { .. } | SizeInvalid(_) => "SIZE_INVALID",
            NameInvalid(_) => "NAME_INVALID",
            NameUnknown => "NAME_UNKNOWN",
            // Distribution's router does not match an invalid reference
            // (404 for every method); the spec's table lists only 404 here.
            TagInvalid(_) => "MANIFEST_UNKNOWN",
            PaginationInvalid(_) => "PAGINATION_NUMBER_INVALID",
            NotFound | MethodNotAllowed { .. } | Unsupported(_) => "UNSUPPORTED",
            StorageFull | StorageFailed => "UNKNOWN",
            StorageUnavailable => "UNAVAILABLE",
        }
    }

    pub fn status(&self) -> StatusCode {
        use OciError::*;
        match self {
            BlobUnknown(_) | BlobUploadUnknown | ManifestUnknown | NameUnknown | NotFound
            | TagInvalid(_) => StatusCode::NOT_FOUND,
            ChunkOutOfOrder { .. } | RangeNotSatisfiable { .. } => {
                StatusCode::RANGE_NOT_SATISFIABLE
            }
            ManifestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            MethodNotAllowed { .. } | Unsupported(_) => StatusCode::METHOD_NOT_ALLOWED,
            BlobUploadInvalid(_)
            | DigestMismatch { .. }
            | DigestInvalid(_)
            | ManifestBlobUnknown(_)
            | ManifestInvalid(_)
            | NameInvalid(_)
            | SizeInvalid(_)
            | PaginationInvalid(_) => StatusCode::BAD_REQUEST,
            StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            StorageFailed => StatusCode::INTERNAL_SERVER_ERROR,
            StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Extra machine-readable detail for the `detail` field.
    pub fn detail(&self) -> serde_json::Value {
        use serde_json::json;
        use OciError::*;
        match self {
            BlobUnknown(Some(d)) | ManifestBlobUnknown(d) => json!({ "digest": d }),
            DigestMismatch { expected, actual } => {
                json!({ "expected": expected, "actual": actual })
            }
            ChunkOutOfOrder { start, size } => json!({ "start": start, "size": size }),
            ManifestTooLarge { limit } => json!({ "limit": limit }),
            _ => serde_json::Value::Null,
        }
    }

    /// The message a client sees. Server faults carry no paths or OS
    /// details: those go to the log, from the layer that saw the cause.
    pub fn message(&self) -> String {
        self.to_string()
    }

    pub fn is_server_fault(&self) -> bool {
        self.status().is_server_error()
    }

    /// The body of the OCI error JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let mut e = serde_json::json!({ "code": self.code(), "message": self.message() });
        let detail = self.detail();
        if !detail.is_null() {
            e["detail"] = detail;
        }
        serde_json::json!({ "errors": [e] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_4xx_and_storage_errors_5xx() {
        assert_eq!(OciError::BlobUploadUnknown.status(), 404);
        assert_eq!(OciError::ManifestInvalid("x".into()).status(), 400);
        assert_eq!(
            OciError::ChunkOutOfOrder { start: 5, size: 0 }.status(),
            416
        );
        assert_eq!(OciError::StorageFailed.status(), 500);
        assert_eq!(OciError::StorageFull.status(), 507);
    }

    #[test]
    fn json_shape() {
        let d = Digest::sha256_of(b"x");
        let j = OciError::BlobUnknown(Some(d.clone())).to_json();
        assert_eq!(j["errors"][0]["code"], "BLOB_UNKNOWN");
        assert_eq!(j["errors"][0]["detail"]["digest"], d.to_string());
    }
}
