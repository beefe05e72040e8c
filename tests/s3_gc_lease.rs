//! The garbage-collection lease of several instances on one bucket of a
//! real Garage node: a slow write of the lease, a late release, an expired
//! holder, a sweep longer than the lease and a sweep whose renewal fails;
//! and the check that Garage ignores conditional `PUT`s, which the lease's
//! design rests on.
//!
//! Timing is made deterministic with a [`Relay`] between one instance and
//! Garage: it holds back the one request that must be slow while the other
//! instance acts, and the test waits until that request is actually held.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::s3::*;
use common::{Garage, Relay};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use regproxy::oci::digest::Digest;
use regproxy::registry::storage::Storage;
use regproxy::registry::Registry;

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
