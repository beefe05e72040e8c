//! Limits and costs of the S3 backend, against a real Garage node: a blob
//! larger than the store's part count allows at a fixed part size (S3:
//! 10,000 parts; the test lowers the count to 8 instead of writing 50 GiB)
//! is written in growing parts and commits with the right hash, in one
//! `PATCH` body and in the final copy; and a chunked push costs each
//! `PATCH` the same store requests and bytes at its 100th chunk as at its
//! 10th (counted by a relay between regproxy and Garage); the catalog of
//! many repositories is listed whole.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::s3::{s3_at, BUCKET};
use common::*;
use futures_util::TryStreamExt;
use regproxy::oci::digest::Digest;
use regproxy::oci::names::{RepoName, UploadId};
use regproxy::registry::storage::s3::PartLimits;
use regproxy::registry::storage::{ByteStream, Storage};

const MIB: usize = 1 << 20;

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 13) as u8))
        .collect()
}

/// `bytes` as a request body arriving in 64 KiB pieces.
fn pieces(bytes: &[u8]) -> ByteStream {
    let parts: Vec<std::io::Result<Bytes>> = bytes
        .chunks(64 << 10)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(parts))
}

/// A blob of 60 MiB needs 12 parts of 5 MiB; the store (as the test
/// lowers it) takes 8. Sent as one `PATCH` body through A and committed
/// (copied into one object) through B, it must be stored whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_over_the_part_count_at_a_fixed_part_size_commits_and_hashes_right() {
    let g = Garage::start(BUCKET);
    let limits = PartLimits {
        min_part: 5 * MIB,
        max_parts: 8,
    };
    let a = s3_at(&g, &g.endpoint).with_part_limits(limits);
    let b = s3_at(&g, &g.endpoint).with_part_limits(limits);
    let repo: RepoName = "team/big".parse().unwrap();
    let data = pattern(60 * MIB, 7);
    assert!(data.len() / limits.min_part > limits.max_parts);
    let d = Digest::sha256_of(&data);
    let id = UploadId::new();
    a.upload_create(&repo, id).await.unwrap();
    let got = a
        .upload_append(&repo, id, 0, None, pieces(&data))
        .await
        .unwrap_or_else(|e| panic!("one 60 MiB PATCH body: {e}"));
    assert_eq!(got.size, data.len() as u64);
    let began = std::time::Instant::now();
    assert_eq!(
        b.upload_commit_verified(&repo, id, &d)
            .await
            .unwrap_or_else(|e| panic!("committing 60 MiB: {e}")),
        None
    );
    // A figure for the README (the final PUT's copy rate), not a check.
    let secs = began.elapsed().as_secs_f64();
    eprintln!(
        "commit (read back, hash, write) of 60 MiB: {secs:.2} s, {:.0} MB/s",
        data.len() as f64 / secs / 1e6
    );
    let r = a.blob_reader(&d, None).await.unwrap().expect("the blob");
    assert_eq!(r.size, data.len() as u64);
    let back: Vec<Bytes> = r.body.try_collect().await.unwrap();
    let back = back.concat();
    assert_eq!(Digest::sha256_of(&back), d, "the stored blob hashes wrong");
    assert!(
        g.multipart_uploads(BUCKET).is_empty(),
        "incomplete multipart uploads left"
    );
}

/// What one `PATCH` cost in the store.
#[derive(Debug, Clone)]
struct Cost {
    requests: usize,
    lists: usize,
    bytes_down: u64,
}

fn cost(t: &Traffic) -> Cost {
    Cost {
        requests: t.requests.len(),
        lists: t.count("GET", "list-type=2"),
        bytes_down: t.bytes_down,
    }
}

/// A push in 100 chunks of 1 KiB, PATCHed alternately through two
/// instances: the store requests of each `PATCH` (and the bytes the store
/// answers) must not grow with the number of chunks already stored.
#[test]
fn a_patch_costs_no_more_at_the_100th_chunk_than_at_the_10th() {
    let garage = Garage::start(BUCKET);
    let relay = Arc::new(Relay::start(&garage.endpoint));
    let dir = temp_dir("s3-costs-");
    let creds = garage.credentials_file(dir.path());
    let storage = garage
        .storage_yaml(BUCKET, "", &creds)
        .replace(&garage.endpoint, &relay.endpoint);
    let yaml = format!("tls:\n  enabled: false\nauth:\n  enabled: false\n{storage}");
    let config = write_config(dir.path(), &yaml);
    let (a, b) = (serve_loopback(&config), serve_loopback(&config));
    let (ua, ub) = (a.url(), b.url());

    let start = http_request(
        "POST",
        &format!("{ua}/v2/team/chunky/blobs/uploads/"),
        &[],
        None,
    );
    assert_eq!(start.status, 202, "{}", start.text());
    let location = start.header("location").expect("Location");
    let path = location
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
        .unwrap_or(location);
    let chunk = 1024;
    let data = pattern(100 * chunk, 3);
    let mut costs = Vec::new();
    for (i, piece) in data.chunks(chunk).enumerate() {
        let base = if i % 2 == 0 { &ua } else { &ub };
        let range = format!("{}-{}", i * chunk, (i + 1) * chunk - 1);
        let before = relay.traffic();
        let r = http_request(
            "PATCH",
            &format!("{base}{path}"),
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", &range),
            ],
            Some(piece.to_vec()),
        );
        assert_eq!(r.status, 202, "chunk {i}: {}", r.text());
        costs.push(cost(&relay.traffic().since(&before)));
    }
    let d = Digest::sha256_of(&data);
    let before = relay.traffic();
    let sep = if path.contains('?') { '&' } else { '?' };
    let put = http_request("PUT", &format!("{ub}{path}{sep}digest={d}"), &[], None);
    assert_eq!(put.status, 201, "{}", put.text());
    let commit = cost(&relay.traffic().since(&before));
    let blob = http_get(&format!("{ua}/v2/team/chunky/blobs/{d}"));
    assert_eq!(blob.status, 200);
    assert_eq!(Digest::sha256_of(&blob.body), d);

    for n in [1, 2, 10, 50, 99, 100] {
        eprintln!("PATCH #{n}: {:?}", costs[n - 1]);
    }
    eprintln!("final PUT (100 chunks): {commit:?}");
    let (tenth, last) = (&costs[9], &costs[99]);
    assert!(
        last.requests <= tenth.requests && last.lists <= tenth.lists,
        "more store requests at the 100th PATCH than at the 10th: {last:?} vs {tenth:?}"
    );
    assert!(
        last.bytes_down < tenth.bytes_down * 3 / 2,
        "the store answered the 100th PATCH with far more bytes than the 10th \
         (listings grow with the chunks): {last:?} vs {tenth:?}"
    );
}

/// 120 repositories (some nested): the catalog finds every one. The
/// store requests and the time the walk took are printed (a figure for
/// the README, not a check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_of_many_repositories_is_listed_whole() {
    let g = Garage::start(BUCKET);
    let relay = Relay::start(&g.endpoint);
    let s = s3_at(&g, &relay.endpoint);
    let raw = common::s3::raw_store(&g);
    let link = format!("sha256:{}", "ab".repeat(32));
    let mut want = Vec::new();
    for i in 0..120 {
        let name = if i % 3 == 0 {
            format!("team{}/app{i}", i % 7)
        } else {
            format!("repo{i}")
        };
        let key = format!(
            "docker/registry/v2/repositories/{name}/_layers/sha256/{}/link",
            "ab".repeat(32)
        );
        object_store::ObjectStoreExt::put(
            &raw,
            &object_store::path::Path::from(key),
            Bytes::from(link.clone()).into(),
        )
        .await
        .unwrap();
        want.push(name);
    }
    want.sort();
    let before = relay.traffic();
    let began = std::time::Instant::now();
    let got = s.list_repositories().await.unwrap();
    let took = began.elapsed();
    let t = relay.traffic().since(&before);
    eprintln!(
        "catalog of {} repositories: {} store requests, {:.0} ms",
        got.len(),
        t.requests.len(),
        took.as_secs_f64() * 1e3
    );
    assert_eq!(got, want);
}
