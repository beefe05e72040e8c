//! Races between regproxy instances on one bucket of a real Garage node:
//! a tag moved through one instance while another deletes its old
//! manifest, and pushes through one instance (a real `regproxy serve`)
//! while another collects garbage: between its mark and its sweep, after
//! it announced what it will delete, and while it deletes.
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
use regproxy::oci::digest::Digest;
use regproxy::oci::names::{RepoName, Tag};
use regproxy::registry::storage::Storage;

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

/// Instance A collects; between its mark and its sweep, a push through
/// instance B (a real `regproxy serve`) re-uses an old blob nothing
/// referenced when A marked (its layer link still in the repository, so B
/// answers the client's `HEAD` with 200 and the client skips the upload).
/// A must not sweep it: the image pulled back is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_reused_through_another_instance_during_a_collection_is_kept() {
    let g = Garage::start(BUCKET);
    let dir = common::temp_dir("s3-gc-reuse-");
    let hold = |_: &common::RawImage| rule("GET ", &[BLOB_LISTING], HOLD);
    let HeldSweep {
        b,
        image: second,
        relay: _relay,
        collecting,
    } = sweep_held(&g, dir.path(), hold, "A's sweep never listed blobs").await;
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
    let hold = |_: &common::RawImage| rule("GET ", &[BLOB_LISTING], Duration::from_secs(1));
    let HeldSweep {
        b,
        image: second,
        relay,
        collecting,
    } = sweep_held(&g, dir.path(), hold, "A's sweep never listed blobs").await;
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
    let HeldSweep {
        b,
        image: second,
        relay: _relay,
        collecting,
    } = sweep_held_at_the_old_layer(&g, dir.path()).await;
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
