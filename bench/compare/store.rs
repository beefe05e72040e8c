//! The store under both registries in `--s3` mode: one Garage 2.5 node on
//! loopback (the fixture of `tests/common/garage.rs`), a fresh bucket per
//! server start, the `storage:` blocks of regproxy's `proxy.yaml` and of
//! Distribution's `config.yml` (its `s3` driver: `regionendpoint`, which
//! in 2.8 also forces path-style requests, `secure: false`), and the
//! store's own speed (one multipart PUT and one GET of the large blob with
//! the `object_store` crate regproxy uses): the ceiling for figures 2-4.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, WriteMultipart};
use sha2::{Digest as _, Sha256};

use crate::common::Garage;
use crate::data::Blob;
use crate::ops::bounded;
use crate::servers::Kind;
use crate::{Ctx, Res};

/// Multipart part size of the limit measurement (regproxy's S3 part size).
const PART: usize = 5 << 20;

/// One Garage node and the buckets made on it.
pub struct S3Store {
    garage: Garage,
    buckets: AtomicUsize,
}

impl S3Store {
    /// Starts the node (panics with the install command if Garage is
    /// missing, as the tests do).
    pub fn start() -> S3Store {
        S3Store {
            garage: Garage::start("bench-limits"),
            buckets: AtomicUsize::new(0),
        }
    }

    /// A fresh bucket for one server start.
    pub fn fresh_bucket(&self, kind: Kind) -> String {
        let n = self.buckets.fetch_add(1, Ordering::Relaxed);
        let bucket = format!("bench-{}-{n}", kind.name());
        self.garage.create_bucket(&bucket);
        bucket
    }

    /// regproxy's `storage:` block (credentials in a file in `dir`).
    pub fn regproxy_yaml(&self, bucket: &str, dir: &std::path::Path) -> String {
        let creds = self.garage.credentials_file(dir);
        self.garage.storage_yaml(bucket, "", &creds)
    }

    /// Distribution's `storage:` block, with the in-memory blob
    /// descriptor cache and deletes as in filesystem mode, and blob GETs
    /// answered by Distribution itself (by default it redirects them to
    /// the store with a presigned URL; regproxy serves them itself too).
    pub fn distribution_yaml(&self, bucket: &str) -> String {
        format!(
            "storage:\n  cache:\n    blobdescriptor: inmemory\n  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n  \
             redirect:\n    disable: true\n  \
             s3:\n    accesskey: {key}\n    secretkey: {secret}\n    region: garage\n    \
             regionendpoint: {endpoint}\n    bucket: {bucket}\n    secure: false\n    \
             v4auth: true\n    rootdirectory: /\n",
            key = self.garage.key_id,
            secret = self.garage.secret,
            endpoint = self.garage.endpoint,
        )
    }

    /// The store alone: one multipart PUT of `blob` (5 MiB parts, up to 8
    /// in flight) and one GET with every byte hashed, in MB/s.
    pub fn speed(&self, rt: &tokio::runtime::Runtime, blob: &Blob) -> Res<(f64, f64)> {
        let store = AmazonS3Builder::new()
            .with_endpoint(&self.garage.endpoint)
            .with_region("garage")
            .with_bucket_name("bench-limits")
            .with_access_key_id(&self.garage.key_id)
            .with_secret_access_key(&self.garage.secret)
            .with_allow_http(true)
            .build()
            .ctx("S3 client for the limit")?;
        let key = ObjectPath::from("limit/blob");
        rt.block_on(bounded("S3 PUT and GET", Duration::from_secs(600), async {
            let started = Instant::now();
            let upload = store
                .put_multipart(&key)
                .await
                .ctx("start a multipart PUT")?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
            for piece in blob.pieces(0, blob.len) {
                w.wait_for_capacity(8).await.ctx("PUT a part")?;
                w.put(piece);
            }
            w.finish().await.ctx("finish the multipart PUT")?;
            let put = blob.len as f64 / started.elapsed().as_secs_f64() / 1e6;

            let started = Instant::now();
            let mut body = store.get(&key).await.ctx("GET")?.into_stream();
            let mut h = Sha256::new();
            let mut n = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.ctx("GET body")?;
                n += chunk.len() as u64;
                h.update(&chunk);
            }
            let get = blob.len as f64 / started.elapsed().as_secs_f64() / 1e6;
            let digest = format!("sha256:{}", hex::encode(h.finalize()));
            if n != blob.len || digest != blob.digest {
                return Err(format!(
                    "the S3 GET returned other bytes ({n} bytes, {digest})"
                ));
            }
            store.delete(&key).await.ctx("DELETE")?;
            Ok((put, get))
        }))
    }
}
