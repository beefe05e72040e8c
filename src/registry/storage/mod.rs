//! Where blobs, manifests, tags and uploads live.
//!
//! The [`Storage`] trait is the whole contract between the API layer and a
//! backend: it moves bytes and links and knows nothing about HTTP or manifest
//! formats. The filesystem backend ([`fs::FsStorage`]) uses CNCF
//! Distribution's on-disk layout; the S3 backend ([`s3::S3Storage`]) keeps
//! the same keys in a bucket, so either can serve what the other wrote.

pub mod fs;
pub mod s3;

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use crate::oci::digest::{Algorithm, Digest, Hasher};
use crate::oci::names::{RepoName, Tag, UploadId};

pub use crate::oci::ByteStream;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The disk (or quota) is full.
    #[error("storage is full")]
    Full,
    /// The client's body stream failed (disconnect, bad framing): the upload
    /// keeps what was written before.
    #[error("reading the request body failed: {0}")]
    Client(std::io::Error),
    #[error("storage I/O error: {0}")]
    Io(std::io::Error),
    #[error("storage data is corrupt: {0}")]
    Corrupt(String),
    /// The upload is not there (any more): finished, cancelled, or purged,
    /// maybe through another instance sharing the storage.
    #[error("upload unknown: {0}")]
    UploadUnknown(String),
    /// Another request already wrote the upload at `start` (a request and
    /// its retry through two instances): this one's bytes were dropped; the
    /// upload holds `size` bytes.
    #[error("offset {start} of the upload was already written by another request; it holds {size} bytes")]
    OffsetTaken { start: u64, size: u64 },
    /// A remote store did not answer, or refused us (down, timed out,
    /// bucket missing, credentials refused): the client may retry.
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
}

impl StorageError {
    /// The state of an upload (gone, offset taken) answers the request,
    /// not a fault of the storage: a 4xx.
    pub fn is_client_state(&self) -> bool {
        matches!(
            self,
            StorageError::UploadUnknown(_) | StorageError::OffsetTaken { .. }
        )
    }
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull {
            StorageError::Full
        } else {
            StorageError::Io(e)
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A byte range of a blob, `start..end` (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// A stored blob as garbage collection sees it.
#[derive(Debug, Clone)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
    /// When its content was last written (the commit of its upload).
    pub modified: SystemTime,
}

/// A manifest revision linked in a repository.
#[derive(Debug, Clone)]
pub struct RevisionInfo {
    pub digest: Digest,
    /// When the link was written (the push of the manifest).
    pub linked: SystemTime,
}

/// An upload in progress, as the purge of abandoned uploads sees it.
#[derive(Debug, Clone)]
pub struct UploadInfo {
    pub id: UploadId,
    /// Bytes received so far.
    pub size: u64,
    /// When the upload was started (`startedat`), if readable.
    pub started: Option<SystemTime>,
    /// When data was last written to it.
    pub last_write: SystemTime,
}

/// An open blob, ready to stream.
pub struct BlobReader {
    /// Size of the whole blob.
    pub size: u64,
    /// The requested range (or the whole blob).
    pub body: ByteStream,
}

/// What an append to an upload did.
pub struct Appended {
    /// Size of the upload after the append.
    pub size: u64,
    /// The running hash, advanced over the appended bytes; `None` when it
    /// could not be kept consistent (then it is recomputed from storage).
    pub hasher: Option<Hasher>,
    /// Set when the client's body failed part-way; `size` counts what was
    /// kept (the filesystem keeps what arrived; S3 keeps nothing of a cut
    /// body, which may be a stale copy of a retry's chunk).
    pub client_error: Option<std::io::Error>,
}

#[async_trait]
pub trait Storage: Send + Sync + 'static {
    // ---- blobs (content-addressed, shared by all repositories) ----

    /// Size of a blob, if it exists.
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>>;
    /// Opens a blob for streaming, optionally a range of it.
    async fn blob_reader(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<Option<BlobReader>>;
    /// Where a client may fetch the blob itself, bypassing regproxy (a
    /// presigned URL of an object store, when `storage.s3.redirect` is on);
    /// `None`: regproxy streams it (the default). Checks nothing: the
    /// caller has already found the blob and the client's right to it.
    async fn blob_redirect(&self, _digest: &Digest) -> Result<Option<String>> {
        Ok(None)
    }
    /// Reads a small blob (a manifest) whole; `None` if it does not exist.
    async fn read_small_blob(&self, digest: &Digest, max: u64) -> Result<Option<Bytes>>;
    /// Stores a small blob (a manifest) atomically under its digest.
    async fn write_small_blob(&self, digest: &Digest, bytes: Bytes) -> Result<()>;

    /// Every blob in storage, with its size and modification time (for
    /// garbage collection). Order is unspecified.
    async fn list_blobs(&self) -> Result<Vec<BlobInfo>>;
    /// Deletes a blob's content; false if it did not exist. Links to it are
    /// not touched: garbage collection removes those itself.
    async fn delete_blob(&self, digest: &Digest) -> Result<bool>;

    // ---- per-repository blob links ----

    async fn layer_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;
    async fn link_layer(&self, repo: &RepoName, digest: &Digest) -> Result<()>;
    /// Removes a blob link; false if there was none.
    async fn unlink_layer(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;
    /// Every blob linked into a repository (its `_layers`).
    async fn list_layers(&self, repo: &RepoName) -> Result<Vec<Digest>>;

    // ---- uploads ----

    async fn upload_create(&self, repo: &RepoName, id: UploadId) -> Result<()>;
    /// Bytes received so far; `None` if the upload does not exist.
    async fn upload_size(&self, repo: &RepoName, id: UploadId) -> Result<Option<u64>>;
    /// Like [`Storage::upload_size`] for the next append, given `known`: a
    /// size this upload had (this process saw it). A backend may count only
    /// what was stored from there, so its cost does not grow with the
    /// upload; it may then answer a size for an upload deleted meanwhile
    /// (the append finds out, `UploadUnknown`).
    async fn upload_size_from(
        &self,
        repo: &RepoName,
        id: UploadId,
        known: u64,
    ) -> Result<Option<u64>> {
        let _ = known;
        self.upload_size(repo, id).await
    }
    /// Appends a body at `offset` (the current size), advancing `hasher`
    /// over the stored bytes. The data is durable when this returns.
    async fn upload_append(
        &self,
        repo: &RepoName,
        id: UploadId,
        offset: u64,
        hasher: Option<Hasher>,
        body: ByteStream,
    ) -> Result<Appended>;
    /// Hashes the whole upload from storage (after a restart, or for a
    /// second algorithm). Returns its size and hash.
    async fn upload_hash(
        &self,
        repo: &RepoName,
        id: UploadId,
        algorithm: Algorithm,
    ) -> Result<(u64, Digest)>;
    /// Turns a complete, verified upload into the blob `digest` and links it
    /// into the repository. The blob becomes visible atomically.
    async fn upload_commit(&self, repo: &RepoName, id: UploadId, digest: &Digest) -> Result<()>;
    /// Like [`Storage::upload_commit`] for an upload whose hash is not
    /// known (its chunks came through other requests or instances): the
    /// content is hashed on its way into the blob, and nothing becomes
    /// visible unless it is `expected`. Returns the actual digest on a
    /// mismatch. The default hashes from storage, then commits.
    async fn upload_commit_verified(
        &self,
        repo: &RepoName,
        id: UploadId,
        expected: &Digest,
    ) -> Result<Option<Digest>> {
        let (_, actual) = self.upload_hash(repo, id, expected.algorithm()).await?;
        if &actual != expected {
            return Ok(Some(actual));
        }
        self.upload_commit(repo, id, expected).await?;
        Ok(None)
    }
    /// Cancels an upload; false if it did not exist.
    async fn upload_delete(&self, repo: &RepoName, id: UploadId) -> Result<bool>;
    /// Every upload in progress, in every repository (also one whose first
    /// push never finished), for the purge of abandoned ones.
    async fn list_uploads(&self) -> Result<Vec<(RepoName, UploadInfo)>>;

    // ---- manifests and tags ----

    async fn manifest_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;
    async fn link_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<()>;
    /// Every manifest revision linked in a repository.
    async fn list_manifests(&self, repo: &RepoName) -> Result<Vec<RevisionInfo>>;
    /// Removes a manifest revision and every tag pointing to it; false if
    /// the revision did not exist.
    async fn unlink_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;
    async fn resolve_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>>;
    async fn set_tag(&self, repo: &RepoName, tag: &Tag, digest: &Digest) -> Result<()>;
    /// Removes a tag (not the manifest); false if there was none.
    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool>;
    /// All tags of a repository, sorted; `None` if the repository is unknown.
    async fn list_tags(&self, repo: &RepoName) -> Result<Option<Vec<String>>>;
    /// All repositories that hold manifests, sorted.
    async fn list_repositories(&self) -> Result<Vec<String>>;
    async fn repository_exists(&self, repo: &RepoName) -> Result<bool>;

    // ---- referrers (OCI 1.1 `subject`) ----

    async fn add_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<()>;
    async fn remove_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<()>;
    async fn list_referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Digest>>;

    // ---- several instances ----

    /// Whether other processes may change this storage at any moment
    /// (several instances on one bucket): then answers about tags are not
    /// cached in memory.
    fn shared(&self) -> bool {
        false
    }

    /// Checks that the storage can be written now (for `/readyz`, startup
    /// and `config check`); the error says what is wrong.
    async fn probe(&self) -> Result<()>;

    /// Takes the garbage-collection lease for `holder` for `ttl`, so one
    /// instance sweeps at a time; false if another holder has it. Storage
    /// used by one process needs no lease (the default). The holder must
    /// stop using it before `ttl` has passed since it asked, unless
    /// renewed ([`Storage::gc_lease_renew`]).
    async fn gc_lease_acquire(&self, _holder: &str, _ttl: std::time::Duration) -> Result<bool> {
        Ok(true)
    }

    /// Extends the lease `holder` holds to `ttl` from now. Only a holder
    /// whose lease has not run out may call it; whether the renewal came
    /// in time is the caller's to judge (see `gc::lease`).
    async fn gc_lease_renew(&self, _holder: &str, _ttl: std::time::Duration) -> Result<()> {
        Ok(())
    }

    /// Announces, under `holder`'s lease, the blobs its sweep is about to
    /// delete, so another instance linking a manifest that needs one of
    /// them waits for the sweep ([`Storage::gc_doomed`]). One process
    /// needs no announcement (its in-memory "recently referenced" set does).
    async fn gc_lease_announce(
        &self,
        _holder: &str,
        _ttl: std::time::Duration,
        _doomed: &[Digest],
    ) -> Result<()> {
        Ok(())
    }

    /// Which of `digests` a collection running now (on any instance) has
    /// announced it is about to delete.
    async fn gc_doomed(&self, _digests: &[Digest]) -> Result<Vec<Digest>> {
        Ok(Vec::new())
    }

    /// Gives back `holder`'s lease; never touches another holder's.
    async fn gc_lease_release(&self, _holder: &str) -> Result<()> {
        Ok(())
    }
}
