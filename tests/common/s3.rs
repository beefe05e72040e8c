//! Shared by the S3 tests: an `S3Storage` reaching Garage directly or
//! through a [`Relay`], a raw `object_store` client on the bucket, relay
//! rules, what the collections there run with, and an instance holding an
//! old unreferenced layer with pushes and pulls of an image re-using it.

use std::sync::Arc;
use std::time::Duration;

use regproxy::registry::gc::{GcOptions, GcReport};
use regproxy::registry::storage::s3::{S3Key, S3Storage, S3Target};
use regproxy::registry::Registry;

use super::{Garage, Relay, Rule};

/// The bucket `Garage::start` makes.
pub const BUCKET: &str = "registry";
/// How long a held request waits in the relay.
pub const HOLD: Duration = Duration::from_secs(4);

/// A collection that deletes everything unreferenced (zero grace).
pub const SWEEP: GcOptions = GcOptions {
    dry_run: false,
    untagged: false,
    grace: Duration::ZERO,
};

/// The listing of `blobs/` that starts the sweep (after the mark).
pub const BLOB_LISTING: &str = "prefix=docker%2Fregistry%2Fv2%2Fblobs";
/// A listing of `repositories/` (the mark, and the sweep's look for
/// manifests linked since).
pub const REPOSITORIES_LISTING: &str = "prefix=docker%2Fregistry%2Fv2%2Frepositories";

/// Where `bucket` is in Garage at `endpoint` (its own, or a relay in
/// front of it), keys under `prefix`.
pub fn s3_target(endpoint: &str, bucket: &str, prefix: &str) -> S3Target {
    S3Target {
        endpoint: endpoint.to_string(),
        region: "garage".into(),
        bucket: bucket.into(),
        prefix: prefix.into(),
        path_style: true,
        redirect_endpoint: None,
    }
}

/// Garage's key for its buckets.
pub fn s3_key(g: &Garage) -> S3Key {
    S3Key {
        access_key_id: g.key_id.clone(),
        secret_access_key: g.secret.clone(),
        session_token: None,
    }
}

/// The S3 backend on [`BUCKET`], reaching Garage at `endpoint` (its own,
/// or a relay in front of it).
pub fn s3_at(g: &Garage, endpoint: &str) -> S3Storage {
    S3Storage::open(&s3_target(endpoint, BUCKET, ""), s3_key(g)).expect("open S3 storage")
}

/// The S3 backend on [`BUCKET`] with keys under `prefix`.
pub fn s3_under(g: &Garage, prefix: &str) -> S3Storage {
    S3Storage::open(&s3_target(&g.endpoint, BUCKET, prefix), s3_key(g)).expect("open S3 storage")
}

/// The bucket without regproxy in between.
pub fn raw_store(g: &Garage) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&g.endpoint)
        .with_region("garage")
        .with_bucket_name(BUCKET)
        .with_access_key_id(&g.key_id)
        .with_secret_access_key(&g.secret)
        .with_allow_http(true)
        .build()
        .unwrap()
}

pub fn rule(method: &'static str, parts: &[&str], delay: Duration) -> Rule {
    Rule {
        method,
        parts: parts.iter().map(|p| p.to_string()).collect(),
        delay,
    }
}

/// Waits for a spawned blocking wait (the relay) without blocking the runtime.
pub async fn wait_held(relay: &Arc<Relay>) -> bool {
    let r = relay.clone();
    tokio::task::spawn_blocking(move || r.wait_held(Duration::from_secs(30)))
        .await
        .unwrap()
}

/// A `regproxy serve` on the bucket (instance B), reaching Garage at
/// `endpoint` (its own, or a relay in front of it).
pub fn serve_on_bucket(g: &Garage, endpoint: &str, dir: &std::path::Path) -> super::Regproxy {
    let creds = g.credentials_file(dir);
    let yaml = format!(
        "tls:\n  enabled: false\nauth:\n  enabled: false\n{}",
        super::garage::s3_storage_yaml(endpoint, BUCKET, "", &creds)
    );
    super::serve_loopback(&super::write_config(dir, &yaml))
}

/// A `regproxy serve` on the bucket (instance B), and an image pushed
/// through it then deleted: its layer is garbage, and old. Returns B and
/// an image that re-uses that layer.
pub async fn instance_with_an_old_unreferenced_layer(
    g: &Garage,
    dir: &std::path::Path,
) -> (super::Regproxy, super::RawImage) {
    let b = serve_on_bucket(g, &g.endpoint, dir);
    let layer = super::random_bytes(5000);
    let first = super::RawImage::new(vec![layer.clone()], None);
    let second = super::RawImage::new(vec![layer], None);
    let u = b.url();
    tokio::task::spawn_blocking(move || {
        super::push_image(&u, "team/app", Some("v1"), &first);
        let del = super::http_request(
            "DELETE",
            &format!("{u}/v2/team/app/manifests/{}", first.digest),
            &[],
            None,
        );
        assert_eq!(del.status, 202, "{}", del.text());
    })
    .await
    .unwrap();
    (b, second)
}

/// Pushes `img` through `url` (blocking client, off the runtime).
pub async fn push(url: &str, img: &super::RawImage) {
    let (u, i) = (url.to_string(), img.clone());
    tokio::task::spawn_blocking(move || super::push_image(&u, "team/app", Some("v2"), &i))
        .await
        .unwrap();
}

/// Pulls `img` back whole through `url`.
pub async fn pull(url: &str, img: &super::RawImage) {
    let (u, i) = (url.to_string(), img.clone());
    tokio::task::spawn_blocking(move || super::pull_and_verify(&u, "team/app", "v2", &i))
        .await
        .unwrap();
}

/// What [`sweep_held_at_the_old_layer`] sets up.
pub struct HeldSweep {
    /// Instance B, a `regproxy serve` on the bucket.
    pub b: super::Regproxy,
    /// An image re-using B's old unreferenced layer (`blobs[1]`).
    pub image: super::RawImage,
    /// In front of A's store; holds A's delete of that layer.
    pub relay: Arc<Relay>,
    /// A's collection, waiting on the held delete.
    pub collecting: tokio::task::JoinHandle<regproxy::registry::storage::Result<GcReport>>,
}

/// Instance B with an old unreferenced layer (see
/// [`instance_with_an_old_unreferenced_layer`]), and instance A (in
/// process) collecting through a relay that holds the request `hold`
/// names (given the image that re-uses the layer): returns once that
/// request is held (`what` says which, if it never is).
pub async fn sweep_held(
    g: &Garage,
    dir: &std::path::Path,
    hold: impl FnOnce(&super::RawImage) -> Rule,
    what: &str,
) -> HeldSweep {
    let (b, image) = instance_with_an_old_unreferenced_layer(g, dir).await;
    let relay = Arc::new(Relay::start(&g.endpoint));
    let a = Arc::new(Registry::new(Arc::new(s3_at(g, &relay.endpoint))));
    relay.set_rules(vec![hold(&image)]);
    let collecting = tokio::spawn(async move { a.gc(SWEEP).await });
    assert!(wait_held(&relay).await, "{what}");
    HeldSweep {
        b,
        image,
        relay,
        collecting,
    }
}

/// [`sweep_held`] at A's delete of the old layer: the sweep has announced
/// it.
pub async fn sweep_held_at_the_old_layer(g: &Garage, dir: &std::path::Path) -> HeldSweep {
    let hold = |image: &super::RawImage| {
        let hex = image.blobs[1].0.trim_start_matches("sha256:");
        rule("", &["<Delete", &format!("{hex}/data")], HOLD)
    };
    sweep_held(g, dir, hold, "A never deleted the old layer").await
}
