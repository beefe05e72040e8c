//! What a "not found" costs on the S3 backend, against a real Garage node:
//! a read of a missing object (a layer or tag link: what every `HEAD` of a
//! layer a client is about to push asks) is one request to the store, as
//! the store's answer (`NoSuchKey`) already says the bucket is there; only
//! an answer that does not say so (a `HEAD` has no body) costs a listing
//! of the bucket to tell a missing key from a missing bucket.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::s3::*;
use common::{Garage, Relay};
use regproxy::oci::digest::Digest;
use regproxy::oci::names::{RepoName, Tag};
use regproxy::registry::storage::Storage;

/// Counts every request the relay passes (a rule matching all, not held).
fn count_all(relay: &Relay) {
    relay.set_rules(vec![rule("", &["HTTP/1.1"], Duration::ZERO)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_link_costs_one_request_to_the_store() {
    let g = Garage::start(BUCKET);
    let relay = Arc::new(Relay::start(&g.endpoint));
    let s = s3_at(&g, &relay.endpoint);
    let repo: RepoName = "team/app".parse().unwrap();
    let tag: Tag = "v1".parse().unwrap();
    count_all(&relay);
    let before = relay.matched();
    for i in 0..10 {
        let d = Digest::sha256_of(format!("layer {i}").as_bytes());
        assert!(!s.layer_linked(&repo, &d).await.unwrap());
    }
    assert_eq!(s.resolve_tag(&repo, &tag).await.unwrap(), None);
    assert_eq!(
        relay.matched() - before,
        11,
        "ten layer HEADs and a tag miss should cost one request each"
    );
}
