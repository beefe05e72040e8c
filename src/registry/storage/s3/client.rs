//! Building the S3 client from `storage.s3`: where the bucket is
//! ([`S3Target`]), the key ([`S3Key`], its secret never printed), and the
//! timeouts and retries that keep a dead or slow store from hanging a
//! request; plus the signer for presigned download URLs, if redirects are on.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{ClientOptions, RetryConfig};

use super::keys::Keys;
use super::S3Storage;

/// How long connecting to the store may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the store may stay silent while answering (or while we send a
/// body); a longer pause fails the request.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries of a failed request (errors and 5xx), within [`RETRY_TIMEOUT`].
const MAX_RETRIES: usize = 3;
const RETRY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a presigned download URL stays valid (Distribution's default):
/// long enough for a slow client to start a large layer, short enough that
/// a leaked URL soon stops working.
pub(super) const REDIRECT_LIFETIME: Duration = Duration::from_secs(20 * 60);

/// Where the bucket is (from `storage.s3`, validated by `config`).
#[derive(Debug, Clone)]
pub struct S3Target {
    /// `http(s)://host:port`
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Keys start with `<prefix>/docker/registry/v2/` (empty: the bucket's root).
    pub prefix: String,
    /// `endpoint/bucket/key` rather than `bucket.endpoint/key`.
    pub path_style: bool,
    /// Answer blob downloads with a redirect to a URL presigned for this
    /// address of the store (as clients reach it); `None`: stream them.
    pub redirect_endpoint: Option<String>,
}

/// An access key; `Debug` hides the secret and the session token.
#[derive(Clone)]
pub struct S3Key {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The session token of temporary credentials (`AWS_SESSION_TOKEN`).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Key({}, ***)", self.access_key_id)
    }
}

impl S3Storage {
    /// Builds the client (no request is sent yet; see [`Storage::probe`]).
    /// The error says what to fix.
    pub fn open(s: &S3Target, key: S3Key) -> std::result::Result<S3Storage, String> {
        let options = ClientOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_read_timeout(READ_TIMEOUT)
            .with_timeout_disabled()
            .with_allow_http(s.endpoint.starts_with("http://"));
        let retry = RetryConfig {
            max_retries: MAX_RETRIES,
            retry_timeout: RETRY_TIMEOUT,
            ..RetryConfig::default()
        };
        let builder = |endpoint: &str| {
            let b = AmazonS3Builder::new()
                .with_endpoint(endpoint)
                .with_region(&s.region)
                .with_bucket_name(&s.bucket)
                .with_access_key_id(&key.access_key_id)
                .with_secret_access_key(&key.secret_access_key)
                .with_virtual_hosted_style_request(!s.path_style)
                .with_allow_http(endpoint.starts_with("http://"));
            match &key.session_token {
                Some(token) => b.with_token(token),
                None => b,
            }
        };
        let signer = match &s.redirect_endpoint {
            Some(e) => Some(Arc::new(
                builder(e)
                    .build()
                    .map_err(|e| format!("storage.s3.redirect_endpoint: {e}"))?,
            )),
            None => None,
        };
        let store = builder(&s.endpoint)
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| format!("storage.s3: {e}"))?;
        Ok(S3Storage {
            store: Arc::new(store),
            keys: Keys::new(&s.prefix),
            place: format!("S3 bucket {} at {}", s.bucket, s.endpoint).into(),
            signer,
            part_limits: super::part_size::S3_LIMITS,
        })
    }

    /// Lowers the part limits of multipart objects (tests: a blob whose
    /// parts would exceed the count without writing 50 GiB).
    pub fn with_part_limits(mut self, limits: super::PartLimits) -> S3Storage {
        self.part_limits = limits;
        self
    }
}
