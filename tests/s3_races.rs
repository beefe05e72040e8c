//! Races between regproxy instances on one bucket of a real Garage node:
//! the garbage-collection lease (a slow write, a late release, an expired
//! holder, a sweep whose renewal fails) and a tag moved through one
//! instance while another deletes its old manifest.
//!
//! Timing is made deterministic with a [`Relay`] between one instance and
//! Garage: it holds back the one request that must be slow (a `PUT` of the
//! lease, a `DELETE`, the listing of `blobs/`) while the other instance
//! acts, and the test waits until that request is actually held.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Garage, Relay, Rule};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use regproxy::oci::digest::Digest;
use regproxy::oci::names::{RepoName, Tag};
use regproxy::registry::gc::GcOptions;
use regproxy::registry::storage::s3::{S3Key, S3Storage, S3Target};
use regproxy::registry::storage::Storage;
use regproxy::registry::Registry;

const BUCKET: &str = "registry";
/// How long a held request waits in the relay.
const HOLD: Duration = Duration::from_secs(4);

fn s3_at(g: &Garage, endpoint: &str) -> S3Storage {
    let target = S3Target {
        endpoint: endpoint.to_string(),
        region: "garage".into(),
        bucket: BUCKET.into(),
        prefix: String::new(),
        path_style: true,
    };
    let key = S3Key {
        access_key_id: g.key_id.clone(),
        secret_access_key: g.secret.clone(),
    };
    S3Storage::open(&target, key).expect("open S3 storage")
}

fn raw_store(g: &Garage) -> object_store::aws::AmazonS3 {
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

fn rule(method: &'static str, parts: &[&str], delay: Duration) -> Rule {
    Rule {
        method,
        parts: parts.iter().map(|p| p.to_string()).collect(),
        delay,
    }
}

/// Waits for a spawned blocking wait (the relay) without blocking the runtime.
async fn wait_held(relay: &Arc<Relay>) -> bool {
    let r = relay.clone();
    tokio::task::spawn_blocking(move || r.wait_held(Duration::from_secs(30)))
        .await
        .unwrap()
}

/// The check the lease design rests on: does Garage honour `If-None-Match:
/// *` and `If-Match` on `PUT`? It does not (it answers 200 and overwrites),
/// so the lease cannot be built on conditional writes there; see
/// `src/registry/storage/s3/lease.rs` for what it uses instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_does_not_honour_conditional_puts() {
    let g = Garage::start(BUCKET);
    let store = raw_store(&g);
    let key = object_store::path::Path::from("probe/conditional");
    let first = store
        .put(&key, PutPayload::from_static(b"first"))
        .await
        .unwrap();
    let create = store
        .put_opts(
            &key,
            PutPayload::from_static(b"second"),
            PutOptions::from(PutMode::Create),
        )
        .await;
    let stale = object_store::UpdateVersion {
        e_tag: Some("\"00000000000000000000000000000000\"".into()),
        version: None,
    };
    let update = store
        .put_opts(
            &key,
            PutPayload::from_static(b"third"),
            PutOptions::from(PutMode::Update(stale)),
        )
        .await;
    let now = store.get(&key).await.unwrap().bytes().await.unwrap();
    eprintln!(
        "Garage 2.5: PUT If-None-Match:* over an existing key -> {:?}; \
         PUT If-Match:<wrong etag> -> {:?}; first etag {:?}; content now {:?}",
        create.as_ref().map(|r| r.e_tag.clone()),
        update.as_ref().map(|r| r.e_tag.clone()),
        first.e_tag,
        String::from_utf8_lossy(&now)
    );
    assert!(
        create.is_ok() && update.is_ok() && &now[..] == b"third",
        "Garage now honours conditional PUTs: the GC lease could use them \
         (create {create:?}, update {update:?})"
    );
}

/// Instance A's write of the lease takes longer than any settle time
/// (held in the relay); B takes the lease meanwhile. Exactly one may hold it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_for_the_lease_with_a_slow_write_exactly_one_wins() {
    let g = Garage::start(BUCKET);
    let relay = Arc::new(Relay::start(&g.endpoint));
    relay.set_rules(vec![rule("PUT ", &["_regproxy/gc-lease"], HOLD)]);
    let a = s3_at(&g, &relay.endpoint);
    let b = s3_at(&g, &g.endpoint);
    let ttl = Duration::from_secs(600);
    let (ra, rb) = tokio::join!(
        a.gc_lease_acquire("instance-a", ttl),
        b.gc_lease_acquire("instance-b", ttl)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(relay.matched() > 0, "A's lease write was never held");
    assert!(
        ra ^ rb,
        "exactly one instance must hold the lease: A {ra}, B {rb}"
    );
    // And a third one, later, finds it taken.
    let c = s3_at(&g, &g.endpoint);
    assert!(!c.gc_lease_acquire("instance-c", ttl).await.unwrap());
}

/// A holder that outlived its lease gives it back late: its release must
/// not remove the lease its successor took meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_release_does_not_remove_the_successors_lease() {
    let g = Garage::start(BUCKET);
    let relay = Arc::new(Relay::start(&g.endpoint));
    let a = Arc::new(s3_at(&g, &relay.endpoint));
    let b = s3_at(&g, &g.endpoint);
    let short = Duration::from_secs(1);
    let long = Duration::from_secs(600);
    assert!(a.gc_lease_acquire("instance-a", short).await.unwrap());
    // A's lease runs out (A stalled); its release is slow on the wire.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    relay.set_rules(vec![rule("", &["<Delete", "_regproxy/gc-lease"], HOLD)]);
    let releasing = {
        let a = a.clone();
        tokio::spawn(async move { a.gc_lease_release("instance-a").await })
    };
    assert!(
        wait_held(&relay).await,
        "A's release never reached the store"
    );
    assert!(
        b.gc_lease_acquire("instance-b", long).await.unwrap(),
        "B takes the expired lease"
    );
    releasing.await.unwrap().unwrap();
    let c = s3_at(&g, &g.endpoint);
    assert!(
        !c.gc_lease_acquire("instance-c", long).await.unwrap(),
        "A's late release removed B's lease: C took it while B holds it"
    );
}

/// A holder that died keeps the lease no longer than its time to live, as
/// the store's clock counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over() {
    let g = Garage::start(BUCKET);
    let a = s3_at(&g, &g.endpoint);
    let b = s3_at(&g, &g.endpoint);
    assert!(a
        .gc_lease_acquire("instance-a", Duration::from_secs(1))
        .await
        .unwrap());
    let long = Duration::from_secs(600);
    assert!(
        !b.gc_lease_acquire("instance-b", long).await.unwrap(),
        "a live lease is not taken"
    );
    // A never renews nor releases (it died).
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert!(
        b.gc_lease_acquire("instance-b", long).await.unwrap(),
        "the expired lease is taken over"
    );
}

/// Garbage blobs (unreferenced, old enough with a zero grace).
async fn make_garbage(s: &dyn Storage, n: usize) -> Vec<Digest> {
    let mut out = Vec::new();
    for i in 0..n {
        let bytes = Bytes::from(format!("garbage {i}"));
        let d = Digest::sha256_of(&bytes);
        s.write_small_blob(&d, bytes).await.unwrap();
        out.push(d);
    }
    out
}

const SWEEP: GcOptions = GcOptions {
    dry_run: false,
    untagged: false,
    grace: Duration::ZERO,
};

/// The listing of `blobs/` that starts the sweep (after the mark).
const BLOB_LISTING: &str = "prefix=docker%2Fregistry%2Fv2%2Fblobs";
/// A listing of `repositories/` (the mark, and the sweep's look for
/// manifests linked since).
const REPOSITORIES_LISTING: &str = "prefix=docker%2Fregistry%2Fv2%2Frepositories";

/// A sweep longer than the lease's time to live renews it: another
/// instance's collection meanwhile steps back, and the sweep completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_sweep_renews_its_lease_and_others_step_back() {
    let g = Garage::start(BUCKET);
    let relay = Arc::new(Relay::start(&g.endpoint));
    let a = Arc::new(Registry::new(Arc::new(s3_at(&g, &relay.endpoint))));
    let b = Registry::new(Arc::new(s3_at(&g, &g.endpoint)));
    a.set_gc_lease_ttl(Duration::from_secs(3));
    b.set_gc_lease_ttl(Duration::from_secs(3));
    let garbage = make_garbage(a.storage().as_ref(), 3).await;
    // The sweep's listing takes three times the lease's life.
    relay.set_rules(vec![rule("GET ", &[BLOB_LISTING], Duration::from_secs(9))]);
    let sweeping = {
        let a = a.clone();
        tokio::spawn(async move { a.gc(SWEEP).await })
    };
    assert!(wait_held(&relay).await, "A's sweep never listed blobs");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let rb = b.gc(SWEEP).await.unwrap();
    assert!(
        rb.skipped.is_some(),
        "B swept while A still held (and renewed) the lease: {rb:?}"
    );
    let ra = sweeping.await.unwrap().unwrap();
    assert_eq!(ra.total.blobs, garbage.len() as u64, "{ra:?}");
}

/// When the lease cannot be renewed in time, the sweep stops before it
/// deletes anything more, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_whose_renewal_fails_stops_before_deleting_anything() {
    let g = Garage::start(BUCKET);
    let relay = Arc::new(Relay::start(&g.endpoint));
    let a = Arc::new(Registry::new(Arc::new(s3_at(&g, &relay.endpoint))));
    a.set_gc_lease_ttl(Duration::from_secs(3));
    let garbage = make_garbage(a.storage().as_ref(), 3).await;
    relay.set_rules(vec![rule("GET ", &[BLOB_LISTING], Duration::from_secs(6))]);
    let sweeping = {
        let a = a.clone();
        tokio::spawn(async move { a.gc(SWEEP).await })
    };
    assert!(wait_held(&relay).await, "A's sweep never listed blobs");
    // From now on A's renewals hang far past the lease's life.
    relay.set_rules(vec![
        rule("GET ", &[BLOB_LISTING], Duration::from_secs(6)),
        rule("PUT ", &["_regproxy/gc-lease"], Duration::from_secs(30)),
    ]);
    let result = sweeping.await.unwrap();
    let e = result.expect_err("the sweep went on without its lease");
    assert!(e.to_string().contains("GC lease"), "{e}");
    let direct = s3_at(&g, &g.endpoint);
    for d in &garbage {
        assert!(
            direct.blob_size(d).await.unwrap().is_some(),
            "{d} was deleted after the lease was lost"
        );
    }
}

/// A tag moved to a new manifest through B while A deletes the manifest it
/// pointed to (A's delete of the old tag link is slow): the tag survives,
/// pointing at the new manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_moved_through_one_instance_survives_a_manifest_delete_through_another() {
    let g = Garage::start(BUCKET);
    let relay = Arc::new(Relay::start(&g.endpoint));
    let a = Arc::new(s3_at(&g, &relay.endpoint));
    let b = s3_at(&g, &g.endpoint);
    let repo: RepoName = "team/app".parse().unwrap();
    let tag: Tag = "latest".parse().unwrap();
    let (m1, m2) = (
        Bytes::from_static(b"{\"one\":1}"),
        Bytes::from_static(b"{\"two\":2}"),
    );
    let (d1, d2) = (Digest::sha256_of(&m1), Digest::sha256_of(&m2));
    for (d, m) in [(&d1, m1), (&d2, m2)] {
        b.write_small_blob(d, m).await.unwrap();
        b.link_manifest(&repo, d).await.unwrap();
    }
    b.set_tag(&repo, &tag, &d1).await.unwrap();
    relay.set_rules(vec![rule("", &["<Delete", "/current/link"], HOLD)]);
    let deleting = {
        let (a, repo, d1) = (a.clone(), repo.clone(), d1.clone());
        tokio::spawn(async move { a.unlink_manifest(&repo, &d1).await })
    };
    assert!(wait_held(&relay).await, "A never deleted the tag link");
    b.set_tag(&repo, &tag, &d2).await.unwrap();
    assert!(deleting.await.unwrap().unwrap());
    assert_eq!(
        b.resolve_tag(&repo, &tag).await.unwrap(),
        Some(d2.clone()),
        "the tag set through B was lost"
    );
    assert!(!b.manifest_linked(&repo, &d1).await.unwrap());
    assert_eq!(
        b.list_tags(&repo).await.unwrap(),
        Some(vec!["latest".to_string()])
    );
}

/// A `regproxy serve` on the bucket (instance B), and an image pushed
/// through it then deleted: its layer is garbage, and old. Returns B and
/// an image that re-uses that layer.
async fn instance_with_an_old_unreferenced_layer(
    g: &Garage,
    dir: &std::path::Path,
) -> (common::Regproxy, common::RawImage) {
    let creds = g.credentials_file(dir);
    let yaml = format!(
        "tls:\n  enabled: false\nauth:\n  enabled: false\n{}",
        g.storage_yaml(BUCKET, "", &creds)
    );
    let config = common::write_config(dir, &yaml);
    let b = common::Regproxy::start_with_args(&[
        "serve",
        "--config",
        common::path_str(&config),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let layer = common::random_bytes(5000);
    let first = common::RawImage::new(vec![layer.clone()], None);
    let second = common::RawImage::new(vec![layer], None);
    let u = b.url();
    tokio::task::spawn_blocking(move || {
        common::push_image(&u, "team/app", Some("v1"), &first);
        let del = common::http_request(
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
async fn push(url: &str, img: &common::RawImage) {
    let (u, i) = (url.to_string(), img.clone());
    tokio::task::spawn_blocking(move || common::push_image(&u, "team/app", Some("v2"), &i))
        .await
        .unwrap();
}

/// Pulls `img` back whole through `url`.
async fn pull(url: &str, img: &common::RawImage) {
    let (u, i) = (url.to_string(), img.clone());
    tokio::task::spawn_blocking(move || common::pull_and_verify(&u, "team/app", "v2", &i))
        .await
        .unwrap();
}

/// Instance A collects; between its mark and its sweep, a push through
/// instance B (a real `regproxy serve`) re-uses an old blob nothing
/// referenced when A marked (its layer link still in the repository, so B
/// answers the client's `HEAD` with 200 and the client skips the upload).
/// A must not sweep it: the image pulled back is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_reused_through_another_instance_during_a_collection_is_kept() {
    let g = Garage::start(BUCKET);
    let dir = common::temp_dir("s3-gc-reuse-");
    let (b, second) = instance_with_an_old_unreferenced_layer(&g, dir.path()).await;
    let relay = Arc::new(Relay::start(&g.endpoint));
    let a = Arc::new(Registry::new(Arc::new(s3_at(&g, &relay.endpoint))));
    relay.set_rules(vec![rule("GET ", &[BLOB_LISTING], HOLD)]);
    let collecting = {
        let a = a.clone();
        tokio::spawn(async move { a.gc(SWEEP).await })
    };
    assert!(wait_held(&relay).await, "A's sweep never listed blobs");
    // A has marked; B takes a push that re-uses the old layer.
    push(&b.url(), &second).await;
    let report = collecting.await.unwrap().unwrap();
    // The first image's manifest and config go; the re-used layer stays.
    assert_eq!(
        (report.total.blobs, report.kept_recent),
        (2, 1),
        "{report:?}"
    );
    pull(&b.url(), &second).await;
}

/// The same push, later: A has already announced what it is about to
/// delete (the old layer among it) and not yet looked for new manifests.
/// B's manifest `PUT` waits for A's sweep to end, then finds the layer
/// kept; the image pulled back is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_during_a_sweep_waits_for_it_and_its_blobs_are_kept() {
    let g = Garage::start(BUCKET);
    let dir = common::temp_dir("s3-gc-wait-");
    let (b, second) = instance_with_an_old_unreferenced_layer(&g, dir.path()).await;
    let relay = Arc::new(Relay::start(&g.endpoint));
    let a = Arc::new(Registry::new(Arc::new(s3_at(&g, &relay.endpoint))));
    relay.set_rules(vec![rule("GET ", &[BLOB_LISTING], Duration::from_secs(1))]);
    let collecting = {
        let a = a.clone();
        tokio::spawn(async move { a.gc(SWEEP).await })
    };
    assert!(wait_held(&relay).await, "A's sweep never listed blobs");
    // The next listing of repositories is the look for new manifests,
    // after the announcement.
    relay.set_rules(vec![rule("GET ", &[REPOSITORIES_LISTING], HOLD)]);
    let r = relay.clone();
    let second_hold = tokio::task::spawn_blocking(move || {
        (0..3000).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            r.matched() >= 2 && r.held() > 0
        })
    });
    assert!(
        second_hold.await.unwrap(),
        "A never looked for new manifests"
    );
    push(&b.url(), &second).await;
    let report = collecting.await.unwrap().unwrap();
    // The first image's manifest and config go; the re-used layer stays.
    assert_eq!(
        (report.total.blobs, report.kept_recent),
        (2, 1),
        "{report:?}"
    );
    assert!(
        b.logs().contains("waiting for it"),
        "B's PUT did not wait for the sweep:\n{}",
        b.logs()
    );
    pull(&b.url(), &second).await;
}

/// The same push, later still: A has looked for new manifests and is
/// deleting the old layer (its delete held in the relay). B's manifest
/// `PUT` waits for the sweep, finds the layer gone, unlinks the manifest
/// again and answers `MANIFEST_BLOB_UNKNOWN`; the client's retry uploads
/// the layer again and the image pulled back is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_blob_a_sweep_deletes_meanwhile_is_refused_not_broken() {
    let g = Garage::start(BUCKET);
    let dir = common::temp_dir("s3-gc-refuse-");
    let (b, second) = instance_with_an_old_unreferenced_layer(&g, dir.path()).await;
    let (layer, _) = second.blobs[1].clone();
    let hex = layer.trim_start_matches("sha256:").to_string();
    let relay = Arc::new(Relay::start(&g.endpoint));
    let a = Arc::new(Registry::new(Arc::new(s3_at(&g, &relay.endpoint))));
    relay.set_rules(vec![rule("", &["<Delete", &format!("{hex}/data")], HOLD)]);
    let collecting = {
        let a = a.clone();
        tokio::spawn(async move { a.gc(SWEEP).await })
    };
    assert!(wait_held(&relay).await, "A never deleted the old layer");
    let (u, img) = (b.url(), second.clone());
    let put = tokio::task::spawn_blocking(move || {
        for (d, bytes) in &img.blobs {
            common::push_blob(&u, "team/app", d, bytes);
        }
        common::http_request(
            "PUT",
            &format!("{u}/v2/team/app/manifests/v2"),
            &[("Content-Type", img.media_type)],
            Some(img.manifest.clone()),
        )
    })
    .await
    .unwrap();
    collecting.await.unwrap().unwrap();
    assert_eq!(put.status, 400, "{}", put.text());
    assert!(
        put.text().contains("MANIFEST_BLOB_UNKNOWN"),
        "{}",
        put.text()
    );
    let url = format!("{}/v2/team/app/manifests/{}", b.url(), second.digest);
    let by_digest = tokio::task::spawn_blocking(move || {
        common::http_request("GET", &url, &[("Accept", common::RAW_MANIFEST)], None)
    })
    .await
    .unwrap();
    assert_eq!(by_digest.status, 404, "the refused manifest stayed linked");
    // The client pushes again: the layer is uploaded anew.
    push(&b.url(), &second).await;
    pull(&b.url(), &second).await;
}
