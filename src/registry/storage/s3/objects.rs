//! Single-object operations on the bucket, with "not found" as `None` or
//! `false` and every other failure as [`StorageError::Unavailable`] naming
//! the bucket and endpoint; link objects (a digest as text); and the
//! `hint:` for a failed request.

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::S3Storage;
use crate::oci::digest::Digest;
use crate::registry::storage::{Result, StorageError};

impl S3Storage {
    /// Any store error but "not found", with where it happened and what
    /// the operator should check (`; hint: ...`, which the log line of the
    /// failed request and the CLI show; the client gets only `UNAVAILABLE`).
    pub(super) fn fail(&self, e: object_store::Error) -> StorageError {
        let msg = format!("{}: {e}", self.place);
        let hint = hint_for(&msg);
        StorageError::Unavailable(format!("{msg}; hint: {hint}"))
    }

    /// Called on a "not found" of a `GET`, whose answer names the cause:
    /// `NoSuchKey` says the bucket is there, so no listing is needed (a
    /// `HEAD` of each layer before a push costs one request, not two);
    /// anything else is judged by [`Self::missing`].
    pub(super) async fn missing_after<T>(&self, e: &object_store::Error, nothing: T) -> Result<T> {
        if e.to_string().contains("<Code>NoSuchKey</Code>") {
            Ok(nothing)
        } else {
            self.missing(nothing).await
        }
    }

    /// Called on a "not found": S3 answers 404 both for a missing key and
    /// for a missing bucket (and a `HEAD` has no body to tell them apart),
    /// so the bucket is listed once to know which. A bucket removed at run
    /// time is then `Unavailable` (503 with a hint), not "unknown blob".
    pub(super) async fn missing<T>(&self, nothing: T) -> Result<T> {
        match self
            .store
            .list_with_delimiter(Some(&self.keys.gc_leases()))
            .await
        {
            Ok(_) => Ok(nothing),
            Err(e) => {
                let msg = format!("{}: {e}", self.place);
                let hint = hint_for(&msg);
                Err(StorageError::Unavailable(format!("{msg}; hint: {hint}")))
            }
        }
    }

    pub(super) async fn read(&self, key: &Path) -> Result<Option<Bytes>> {
        match self.store.get(key).await {
            Ok(r) => r.bytes().await.map(Some).map_err(|e| self.fail(e)),
            Err(e @ object_store::Error::NotFound { .. }) => self.missing_after(&e, None).await,
            Err(e) => Err(self.fail(e)),
        }
    }

    pub(super) async fn write(&self, key: &Path, bytes: Bytes) -> Result<()> {
        self.store
            .put(key, PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    pub(super) async fn size_of(&self, key: &Path) -> Result<Option<u64>> {
        match self.store.head(key).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => self.missing(None).await,
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Deletes one object; false if it was not there.
    pub(super) async fn delete(&self, key: &Path) -> Result<bool> {
        if self.size_of(key).await?.is_none() {
            return Ok(false);
        }
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Deletes every object under `dir/`; false if there was none.
    pub(super) async fn delete_dir(&self, dir: &Path) -> Result<bool> {
        let keys: Vec<Path> = self
            .store
            .list(Some(dir))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| self.fail(e))?;
        let any = !keys.is_empty();
        // In bulk: one request per 1,000 keys, not one per object.
        let mut gone = self
            .store
            .delete_stream(futures_util::stream::iter(keys.into_iter().map(Ok)).boxed());
        while let Some(r) = gone.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(any)
    }

    pub(super) async fn write_link(&self, key: &Path, d: &Digest) -> Result<()> {
        self.write(key, Bytes::from(d.to_string())).await
    }

    pub(super) async fn read_link(&self, key: &Path) -> Result<Option<Digest>> {
        let Some(bytes) = self.read(key).await? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        text.trim()
            .parse()
            .map(Some)
            .map_err(|_| StorageError::Corrupt(format!("link object {key} does not hold a digest")))
    }
}

/// What to do about a failed request to the store, from its error text.
pub fn hint_for(error: &str) -> &'static str {
    let lower = error.to_ascii_lowercase();
    if lower.contains("nosuchbucket") || lower.contains("bucket not found") {
        "the bucket does not exist: create it (Garage: garage bucket create NAME) or fix storage.s3.bucket"
    } else if status(&lower, "403 forbidden", "403")
        || lower.contains("accessdenied")
        || lower.contains("invalidaccesskeyid")
        || lower.contains("signaturedoesnotmatch")
        || lower.contains("forbidden")
    {
        "the store refused the key: check the access key and secret (storage.s3.credentials_file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and that the key may read and write the bucket"
    } else if status(&lower, "503 service unavailable", "503")
        || ["serviceunavailable", "slowdown", "could not reach quorum"]
            .iter()
            .any(|w| lower.contains(w))
    {
        "the store answered but cannot serve (503 Service Unavailable; with Garage: fewer nodes up than its quorum, see `garage status`): bring the store's nodes back, then retry"
    } else if [
        "connect",
        "timed out",
        "timeout",
        "sending request",
        "reset",
        "broken pipe",
        "retries",
        "dns",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        "the store did not answer: check storage.s3.endpoint and that the S3 service is running and reachable"
    } else if status(&lower, "404 not found", "404") {
        "the bucket (or the endpoint's path) was not found: check storage.s3.bucket, storage.s3.endpoint and storage.s3.path_style"
    } else {
        "check storage.s3 in proxy.yaml (endpoint, region, bucket, path_style) and the credentials"
    }
}

/// Whether an error text carries HTTP status `code` (not merely the digits,
/// which also turn up in durations such as "in 403.4ms").
fn status(lower: &str, with_reason: &str, code: &str) -> bool {
    lower.contains(with_reason)
        || lower.contains(&format!("status {code}"))
        || lower.contains(&format!("status code: {code}"))
}

#[cfg(test)]
mod tests {
    use super::hint_for;

    #[test]
    fn a_duration_is_not_a_status() {
        let down = "Error performing PUT http://127.0.0.1:1/b/k in 403.418939ms, after 3 retries - HTTP error: error sending request";
        assert!(
            hint_for(down).starts_with("the store did not answer"),
            "{}",
            hint_for(down)
        );
        let refused = "Client error with status 403 Forbidden: <Code>AccessDenied</Code>";
        assert!(hint_for(refused).starts_with("the store refused the key"));
        let wrong_path = "Server returned non-2xx status code: 404 Not Found: ";
        assert!(hint_for(wrong_path).starts_with("the bucket (or the endpoint's path)"));
    }

    #[test]
    fn a_store_without_quorum_is_told_apart_from_one_that_does_not_answer() {
        // Garage with two of three nodes down ("Not connected" must not
        // read as a connection failure to the store itself).
        let garage = "S3 bucket registry at http://127.0.0.1:3900: Generic S3 error: \
            Server returned non-2xx status code: 503 Service Unavailable: <Error><Code>ServiceUnavailable</Code>\
            <Message>Internal error: Could not reach quorum of 2. [\"Network error: Not connected: dcbc\"]</Message></Error>";
        assert!(hint_for(garage).starts_with("the store answered but cannot serve"));
        let refused =
            "S3 bucket b at http://127.0.0.1:1: Generic S3 error: error sending request: \
            client error (Connect): tcp connect error: Connection refused";
        assert!(hint_for(refused).starts_with("the store did not answer"));
        // A digest that happens to hold "503" is not a 503.
        let other = "S3 bucket b at http://h: blobs/sha256/50/503aa/data: 404 Not Found";
        assert!(!hint_for(other).contains("cannot serve"));
    }
}
