//! Collections with `untagged` while another instance on the same bucket
//! of a real Garage node tags an untagged manifest again: pushed again
//! after the sweep announced it (the push waits and stores it again),
//! pushed again before (the sweep sees the link written again), or tagged
//! after the mark (the sweep reads the tags again). Timing is made
//! deterministic with a [`Relay`] in front of the store (see `s3_races`).

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::s3::*;
use common::{Garage, Relay};
use regproxy::oci::digest::Digest;
use regproxy::oci::names::{RepoName, Tag};
use regproxy::registry::gc::GcOptions;
use regproxy::registry::storage::Storage;
use regproxy::registry::Registry;

/// A collection of untagged manifests that deletes everything unreferenced.
const UNTAGGED: GcOptions = GcOptions {
    untagged: true,
    ..SWEEP
};

/// Pushes through `b` an image tagged `v1`, then deletes the tag: its
/// manifest is untagged; its config and layer stay kept by another
/// manifest tagged `keep`. Returns the untagged image.
async fn untagged_image(b: &common::Regproxy) -> common::RawImage {
    let image = common::RawImage::new(vec![common::random_bytes(5000)], None);
    let mut doc: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    doc["annotations"] = serde_json::json!({"kept": "by this tag"});
    let manifest = serde_json::to_vec(&doc).unwrap();
    let keeper = common::RawImage {
        digest: common::digest_of(&manifest),
        manifest,
        ..image.clone()
    };
    let (u, img) = (b.url(), image.clone());
    tokio::task::spawn_blocking(move || {
        common::push_image(&u, "team/app", Some("keep"), &keeper);
        common::push_image(&u, "team/app", Some("v1"), &img);
        let del = common::http_request(
            "DELETE",
            &format!("{u}/v2/team/app/manifests/v1"),
            &[],
            None,
        );
        assert_eq!(del.status, 202, "{}", del.text());
    })
    .await
    .unwrap();
    image
}

/// Pushes `img`'s manifest with the tag `v1` through `url` (blocking,
/// in a task).
fn put_v1(url: String, img: &common::RawImage) -> tokio::task::JoinHandle<common::HttpResponse> {
    let img = img.clone();
    tokio::task::spawn_blocking(move || {
        common::http_request(
            "PUT",
            &format!("{url}/v2/team/app/manifests/v1"),
            &[("Content-Type", img.media_type)],
            Some(img.manifest.clone()),
        )
    })
}

/// `v1` resolves through `url`, and the image pulls whole.
async fn v1_pulls(url: String, img: &common::RawImage) {
    let img = img.clone();
    tokio::task::spawn_blocking(move || {
        let by_tag = common::http_request(
            "GET",
            &format!("{url}/v2/team/app/manifests/v1"),
            &[("Accept", common::RAW_MANIFEST)],
            None,
        );
        assert_eq!(
            by_tag.status,
            200,
            "the tag pushed again was lost: {}",
            by_tag.text()
        );
        common::pull_and_verify(&url, "team/app", "v1", &img);
    })
    .await
    .unwrap();
}

/// With `untagged`, instance A collects an untagged manifest; after A
/// announced what it will remove, and while its removal of that manifest
/// is held, the same manifest is pushed again with a tag through
/// instance B. The tag must survive and the image pull whole: B's `PUT`
/// waits for A's sweep, then stores and links again what it removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untagged_manifest_tagged_again_through_another_instance_during_a_collection_is_kept() {
    let g = Garage::start(BUCKET);
    let dir = common::temp_dir("s3-gc-retag-");
    let b = serve_on_bucket(&g, &g.endpoint, dir.path());
    let image = untagged_image(&b).await;
    let hex = image.digest.trim_start_matches("sha256:").to_string();
    let relay = Arc::new(Relay::start(&g.endpoint));
    let a = Arc::new(Registry::new(Arc::new(s3_at(&g, &relay.endpoint))));
    // A's removal of the untagged manifest starts by reading its link.
    let link = format!("revisions/sha256/{hex}/link");
    relay.set_rules(vec![rule("GET ", &[&link], HOLD)]);
    let collecting = {
        let a = a.clone();
        tokio::spawn(async move { a.gc(UNTAGGED).await })
    };
    assert!(
        wait_held(&relay).await,
        "A never removed the untagged manifest"
    );
    let put = put_v1(b.url(), &image);
    collecting.await.unwrap().unwrap();
    let put = put.await.unwrap();
    assert_eq!(put.status, 201, "{}", put.text());
    v1_pulls(b.url(), &image).await;
    assert!(
        b.logs().contains("waiting for it"),
        "B's PUT did not wait for the sweep:\n{}",
        b.logs()
    );
}

/// The same push, earlier: B's `PUT` links the manifest again before A
/// announced anything (so B does not wait) and sets the tag only after A
/// read the tags again (B's tag write held longer in its own relay). A
/// sees the link written again since its mark and keeps the manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untagged_manifest_linked_again_before_the_announcement_is_kept() {
    let g = Garage::start(BUCKET);
    let dir = common::temp_dir("s3-gc-relink-");
    let to_b = Relay::start(&g.endpoint);
    let b = serve_on_bucket(&g, &to_b.endpoint, dir.path());
    let image = untagged_image(&b).await;
    let relay = Arc::new(Relay::start(&g.endpoint));
    let a = Arc::new(Registry::new(Arc::new(s3_at(&g, &relay.endpoint))));
    // A has marked (the manifest untagged) when it lists blobs.
    relay.set_rules(vec![rule("GET ", &[BLOB_LISTING], HOLD)]);
    to_b.set_rules(vec![rule("PUT ", &["/tags/v1/"], HOLD * 2)]);
    let collecting = {
        let a = a.clone();
        tokio::spawn(async move { a.gc(UNTAGGED).await })
    };
    assert!(wait_held(&relay).await, "A's sweep never listed blobs");
    let put = put_v1(b.url(), &image);
    let report = collecting.await.unwrap().unwrap();
    assert_eq!(to_b.matched(), 1, "B's tag write was not held");
    let put = put.await.unwrap();
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(report.manifests_removed(), 0, "{report:?}");
    v1_pulls(b.url(), &image).await;
}

/// With `untagged`, a tag set through instance B after A's mark, before
/// A announced what it removes, and without the manifest linked again:
/// A's sweep reads the tags again before removing untagged manifests and
/// keeps the one tagged now, with its tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_tagged_after_the_mark_is_not_removed_as_untagged() {
    let g = Garage::start(BUCKET);
    let relay = Arc::new(Relay::start(&g.endpoint));
    let a = Arc::new(Registry::new(Arc::new(s3_at(&g, &relay.endpoint))));
    let b = s3_at(&g, &g.endpoint);
    let repo: RepoName = "team/app".parse().unwrap();
    let tag: Tag = "v1".parse().unwrap();
    let m = Bytes::from_static(b"{\"schemaVersion\":2}");
    let d = Digest::sha256_of(&m);
    b.write_small_blob(&d, m).await.unwrap();
    b.link_manifest(&repo, &d).await.unwrap();
    relay.set_rules(vec![rule("GET ", &[BLOB_LISTING], HOLD)]);
    let collecting = {
        let a = a.clone();
        tokio::spawn(async move { a.gc(UNTAGGED).await })
    };
    assert!(wait_held(&relay).await, "A's sweep never listed blobs");
    b.set_tag(&repo, &tag, &d).await.unwrap();
    let report = collecting.await.unwrap().unwrap();
    assert_eq!(report.manifests_removed(), 0, "{report:?}");
    assert_eq!(b.resolve_tag(&repo, &tag).await.unwrap(), Some(d.clone()));
    assert!(b.manifest_linked(&repo, &d).await.unwrap());
    assert!(b.blob_size(&d).await.unwrap().is_some());
}
