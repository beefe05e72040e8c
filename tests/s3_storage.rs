//! The S3 backend against a real Garage node started by the test: round
//! trips, listings and deletes under the same keys as the filesystem
//! backend (so `aws s3 sync` / `rclone` copy between them), uploads whose
//! chunks land through two `Storage` instances (two regproxy processes on
//! one bucket), bad digests and aborted bodies that leave no blob, a store
//! that is down or refuses the key (a quick `Unavailable` with a hint, never
//! a hang), and the GC lease (two collections at once: one sweeps).

mod common;

use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::s3::{raw_store, s3_at, s3_key, s3_target, s3_under, BUCKET};
use common::Garage;
use futures_util::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use regproxy::oci::digest::{Algorithm, Digest};
use regproxy::oci::names::{RepoName, Tag, UploadId};
use regproxy::registry::gc::GcOptions;
use regproxy::registry::storage::fs::FsStorage;
use regproxy::registry::storage::s3::{S3Key, S3Storage};
use regproxy::registry::storage::{ByteRange, ByteStream, Storage, StorageError};
use regproxy::registry::Registry;

/// Every key in the bucket under `prefix/`, relative to it.
async fn bucket_keys(g: &Garage, prefix: &str) -> BTreeSet<String> {
    let store = raw_store(g);
    let p = object_store::path::Path::from(prefix);
    let metas: Vec<object_store::ObjectMeta> = store.list(Some(&p)).try_collect().await.unwrap();
    metas
        .into_iter()
        .map(|m| {
            m.location.as_ref()[prefix.len()..]
                .trim_start_matches('/')
                .to_string()
        })
        .collect()
}

/// Every file under `root`, relative to it.
fn files_under(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_string_lossy().to_string());
            }
        }
    }
    out
}

fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

fn body(parts: Vec<Vec<u8>>) -> ByteStream {
    let items: Vec<io::Result<Bytes>> = parts.into_iter().map(|p| Ok(Bytes::from(p))).collect();
    Box::pin(futures_util::stream::iter(items))
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn read_all(s: &dyn Storage, d: &Digest, range: Option<ByteRange>) -> Vec<u8> {
    let r = s.blob_reader(d, range).await.unwrap().expect("blob exists");
    let parts: Vec<Bytes> = r.body.try_collect().await.unwrap();
    parts.concat()
}

/// The same pushes on both backends.
async fn push_sample(s: &dyn Storage) -> (Digest, Digest) {
    let r = repo("team/app");
    let layer = pattern(300_000, 7);
    let id = UploadId::new();
    s.upload_create(&r, id).await.unwrap();
    let a = s
        .upload_append(
            &r,
            id,
            0,
            Some(Algorithm::Sha256.hasher()),
            body(vec![layer.clone()]),
        )
        .await
        .unwrap();
    let ld = a.hasher.unwrap().finish();
    assert_eq!(ld, Digest::sha256_of(&layer));
    s.upload_commit(&r, id, &ld).await.unwrap();
    let manifest = Bytes::from(format!("{{\"layers\":[\"{ld}\"]}}"));
    let md = Digest::sha256_of(&manifest);
    s.write_small_blob(&md, manifest).await.unwrap();
    s.link_manifest(&r, &md).await.unwrap();
    s.set_tag(&r, &"v1".parse::<Tag>().unwrap(), &md)
        .await
        .unwrap();
    s.add_referrer(&r, &md, &ld).await.unwrap();
    s.link_layer(&repo("other"), &ld).await.unwrap();
    (ld, md)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_listing_and_deletes_under_the_filesystem_keys() {
    let g = Garage::start(BUCKET);
    let s = s3_under(&g, "reg/prod");
    s.probe().await.unwrap();
    let (ld, md) = push_sample(&s).await;
    let r = repo("team/app");
    let v1: Tag = "v1".parse().unwrap();

    // Round trips.
    assert_eq!(s.blob_size(&ld).await.unwrap(), Some(300_000));
    assert_eq!(read_all(&s, &ld, None).await, pattern(300_000, 7));
    let part = read_all(&s, &ld, Some(ByteRange { start: 10, end: 20 })).await;
    assert_eq!(part, pattern(300_000, 7)[10..20]);
    assert!(s.layer_linked(&r, &ld).await.unwrap());
    assert!(s.manifest_linked(&r, &md).await.unwrap());
    assert_eq!(s.resolve_tag(&r, &v1).await.unwrap(), Some(md.clone()));
    assert_eq!(s.list_tags(&r).await.unwrap(), Some(vec!["v1".to_string()]));
    assert_eq!(s.list_tags(&repo("nothing/here")).await.unwrap(), None);
    assert_eq!(s.list_referrers(&r, &md).await.unwrap(), vec![ld.clone()]);
    assert_eq!(
        s.list_repositories().await.unwrap(),
        vec!["other", "team/app"]
    );
    assert!(s.repository_exists(&r).await.unwrap());
    assert_eq!(s.list_layers(&r).await.unwrap(), vec![ld.clone()]);
    assert_eq!(s.list_manifests(&r).await.unwrap().len(), 1);
    let mut blobs: Vec<Digest> = s
        .list_blobs()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.digest)
        .collect();
    blobs.sort();
    let mut want = vec![ld.clone(), md.clone()];
    want.sort();
    assert_eq!(blobs, want);

    // The same operations on disk make the same keys (uploads done, so
    // only Distribution's layout is left on both sides).
    let dir = tempfile::tempdir().unwrap();
    let fs = FsStorage::open(dir.path()).unwrap();
    push_sample(&fs).await;
    let mut on_disk = files_under(dir.path());
    on_disk.retain(|k| !k.contains("_regproxy_tmp"));
    let in_bucket = bucket_keys(&g, "reg/prod").await;
    assert_eq!(
        in_bucket, on_disk,
        "the bucket and the data directory differ"
    );

    // Deletes.
    assert!(s.delete_tag(&r, &v1).await.unwrap());
    assert!(!s.delete_tag(&r, &v1).await.unwrap());
    assert_eq!(s.resolve_tag(&r, &v1).await.unwrap(), None);
    s.set_tag(&r, &v1, &md).await.unwrap();
    assert!(s.unlink_manifest(&r, &md).await.unwrap());
    assert_eq!(
        s.resolve_tag(&r, &v1).await.unwrap(),
        None,
        "the tag went with its manifest"
    );
    assert!(!s.unlink_manifest(&r, &md).await.unwrap());
    s.remove_referrer(&r, &md, &ld).await.unwrap();
    assert!(s.list_referrers(&r, &md).await.unwrap().is_empty());
    assert!(s.unlink_layer(&r, &ld).await.unwrap());
    assert!(!s.layer_linked(&r, &ld).await.unwrap());
    assert!(s.delete_blob(&ld).await.unwrap());
    assert!(!s.delete_blob(&ld).await.unwrap());
    assert_eq!(s.blob_size(&ld).await.unwrap(), None);
    assert!(s.blob_reader(&ld, None).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_moves_between_instances_and_a_bad_digest_leaves_no_blob() {
    let g = Garage::start(BUCKET);
    // Two instances: nothing shared but the bucket.
    let a = s3_at(&g, &g.endpoint);
    let b = s3_at(&g, &g.endpoint);
    let r = repo("team/big");
    // Over one part (5 MiB), so the chunk is a multipart object.
    let first = pattern(6 << 20, 1);
    let second = pattern(1 << 20, 2);
    let whole = [first.clone(), second.clone()].concat();
    let d = Digest::sha256_of(&whole);

    let id = UploadId::new();
    a.upload_create(&r, id).await.unwrap();
    assert_eq!(b.upload_size(&r, id).await.unwrap(), Some(0));
    // PATCH 1 through A (in 64 KiB pieces, as a socket delivers them).
    let pieces: Vec<Vec<u8>> = first.chunks(64 << 10).map(<[u8]>::to_vec).collect();
    let got = a
        .upload_append(&r, id, 0, None, body(pieces))
        .await
        .unwrap();
    assert_eq!(got.size, first.len() as u64);
    // B sees it and takes PATCH 2.
    assert_eq!(
        b.upload_size(&r, id).await.unwrap(),
        Some(first.len() as u64)
    );
    let got = b
        .upload_append(&r, id, first.len() as u64, None, body(vec![second.clone()]))
        .await
        .unwrap();
    assert_eq!(got.size, whole.len() as u64);
    assert_eq!(
        a.upload_size(&r, id).await.unwrap(),
        Some(whole.len() as u64)
    );
    assert_eq!(
        a.upload_hash(&r, id, Algorithm::Sha256).await.unwrap(),
        (whole.len() as u64, d.clone())
    );
    let uploads = b.list_uploads().await.unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].1.size, whole.len() as u64);
    assert!(uploads[0].1.started.is_some());

    // A wrong digest at the final PUT: refused, nothing visible.
    let wrong = Digest::sha256_of(b"something else");
    assert_eq!(
        a.upload_commit_verified(&r, id, &wrong).await.unwrap(),
        Some(d.clone())
    );
    assert_eq!(a.blob_size(&wrong).await.unwrap(), None);
    assert!(!a.layer_linked(&r, &wrong).await.unwrap());
    // The right one, through A: the chunks are streamed into the blob.
    assert_eq!(a.upload_commit_verified(&r, id, &d).await.unwrap(), None);
    assert_eq!(b.blob_size(&d).await.unwrap(), Some(whole.len() as u64));
    assert!(b.layer_linked(&r, &d).await.unwrap());
    assert_eq!(read_all(&b, &d, None).await, whole);
    assert_eq!(
        b.upload_size(&r, id).await.unwrap(),
        None,
        "the upload is gone"
    );
    assert!(b.list_uploads().await.unwrap().is_empty());

    // A single-chunk upload with a wrong digest: no blob either.
    let id = UploadId::new();
    a.upload_create(&r, id).await.unwrap();
    a.upload_append(&r, id, 0, None, body(vec![b"tiny".to_vec()]))
        .await
        .unwrap();
    let tiny = Digest::sha256_of(b"tiny");
    assert_eq!(
        b.upload_commit_verified(&r, id, &wrong).await.unwrap(),
        Some(tiny.clone())
    );
    assert_eq!(b.blob_size(&wrong).await.unwrap(), None);
    assert_eq!(b.upload_commit_verified(&r, id, &tiny).await.unwrap(), None);
    assert_eq!(read_all(&a, &tiny, None).await, b"tiny");
}

/// Two instances write one offset (a stalled PATCH and its retry, or a
/// hostile client): the second write is refused, and a chunk changed in
/// the bucket behind regproxy's back is never committed under the hash A
/// took in memory, which every repository would then share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_rewritten_in_the_bucket_is_never_committed_under_the_old_hash() {
    let g = Garage::start(BUCKET);
    let (a, b) = (s3_at(&g, &g.endpoint), s3_at(&g, &g.endpoint));
    let r = repo("team/race");
    // One small chunk (server-side copy before the fix) and a multipart one.
    for len in [4 << 10, 6 << 20] {
        let (x, y) = (pattern(len, 3), pattern(len, 4));
        let dx = Digest::sha256_of(&x);
        let id = UploadId::new();
        a.upload_create(&r, id).await.unwrap();
        let h = Some(Algorithm::Sha256.hasher());
        let got = a.upload_append(&r, id, 0, h, body(vec![x])).await.unwrap();
        assert_eq!(got.hasher.map(|h| h.finish()), Some(dx.clone()));
        let second = b.upload_append(&r, id, 0, None, body(vec![y.clone()]));
        assert!(
            matches!(second.await, Err(StorageError::OffsetTaken { .. })),
            "{len}: a second write at offset 0 was taken"
        );
        // The chunk's data object, rewritten straight in the bucket.
        let data: Vec<String> = bucket_keys(&g, "docker/registry/v2/repositories/team/race")
            .await
            .into_iter()
            .filter(|k| k.contains(&format!("_uploads/{id}/data/")))
            .collect();
        assert_eq!(data.len(), 1, "{data:?}");
        let key = format!("docker/registry/v2/repositories/team/race/{}", data[0]);
        raw_store(&g)
            .put(&object_store::path::Path::from(key), Bytes::from(y).into())
            .await
            .unwrap();
        let committed = a.upload_commit(&r, id, &dx).await;
        assert!(committed.is_err(), "{len} bytes: committed {committed:?}");
        assert_eq!(
            a.blob_size(&dx).await.unwrap(),
            None,
            "{len}: other bytes under A's digest"
        );
        assert!(!a.layer_linked(&r, &dx).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_body_keeps_nothing_and_leaves_no_multipart_upload() {
    let g = Garage::start(BUCKET);
    let s = s3_at(&g, &g.endpoint);
    let r = repo("team/abort");
    let id = UploadId::new();
    s.upload_create(&r, id).await.unwrap();
    let data = pattern(7 << 20, 3);
    let items: Vec<io::Result<Bytes>> = vec![
        Ok(Bytes::from(data.clone())),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    let got = s
        .upload_append(
            &r,
            id,
            0,
            Some(Algorithm::Sha256.hasher()),
            Box::pin(futures_util::stream::iter(items)),
        )
        .await
        .unwrap();
    assert!(got.client_error.is_some());
    // Unlike on disk, nothing of a cut body is kept: on a shared bucket it
    // may be a stale copy of what its retry wrote through another instance.
    assert_eq!(got.size, 0, "a cut body was kept");
    assert_eq!(s.upload_size(&r, id).await.unwrap(), Some(0));
    assert!(
        tokio::task::block_in_place(|| g.multipart_uploads(BUCKET)).is_empty(),
        "the cut body's multipart upload was left in the bucket"
    );
    // No blob exists until a commit; cancelling leaves nothing behind.
    assert!(s.list_blobs().await.unwrap().is_empty());
    assert!(s.upload_delete(&r, id).await.unwrap());
    assert_eq!(s.upload_size(&r, id).await.unwrap(), None);
    assert!(bucket_keys(&g, "docker/registry/v2/repositories")
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_or_refuses_is_unavailable_quickly_with_a_hint() {
    let mut g = Garage::start(BUCKET);
    // Refused key.
    let bad = S3Storage::open(
        &s3_target(&g.endpoint, BUCKET, ""),
        S3Key {
            access_key_id: g.key_id.clone(),
            secret_access_key: "0".repeat(64),
            session_token: None,
        },
    )
    .unwrap();
    let e = bad.probe().await.unwrap_err().to_string();
    assert!(e.contains("hint: the store refused the key"), "{e}");
    assert!(!e.contains(&g.secret), "{e}");
    // Missing bucket.
    let missing =
        S3Storage::open(&s3_target(&g.endpoint, "no-such-bucket", ""), s3_key(&g)).unwrap();
    let e = missing.probe().await.unwrap_err().to_string();
    assert!(e.contains("hint: the bucket"), "{e}");
    // Endpoint down: every call fails as Unavailable, bounded in time.
    let s = s3_at(&g, &g.endpoint);
    g.kill9();
    let started = Instant::now();
    let e = s.blob_size(&Digest::sha256_of(b"x")).await.unwrap_err();
    assert!(matches!(e, StorageError::Unavailable(_)), "{e}");
    let e = s.probe().await.unwrap_err().to_string();
    assert!(e.contains("hint: the store did not answer"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "a dead store must fail within the retry timeout, not hang"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collections_on_one_bucket_one_sweeps_the_other_steps_back() {
    let g = Garage::start(BUCKET);
    let a = Registry::new(Arc::new(s3_at(&g, &g.endpoint)));
    let b = Registry::new(Arc::new(s3_at(&g, &g.endpoint)));
    // Garbage: a blob no manifest needs.
    let junk = Bytes::from_static(b"unreferenced");
    let jd = Digest::sha256_of(&junk);
    a.storage().write_small_blob(&jd, junk).await.unwrap();
    let options = GcOptions {
        dry_run: false,
        untagged: false,
        grace: Duration::ZERO,
    };
    let (ra, rb) = tokio::join!(a.gc(options), b.gc(options));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let ran: Vec<_> = [&ra, &rb]
        .into_iter()
        .filter(|r| r.skipped.is_none())
        .collect();
    assert_eq!(ran.len(), 1, "exactly one collection sweeps: {ra:?} {rb:?}");
    assert_eq!(ran[0].total.blobs, 1);
    let skipped = if ra.skipped.is_some() { &ra } else { &rb };
    assert!(skipped
        .to_string()
        .contains("another instance holds the GC lease"));
    assert_eq!(a.storage().blob_size(&jd).await.unwrap(), None);
    // The lease was given back: the next collection runs.
    let again = b.gc(options).await.unwrap();
    assert!(again.skipped.is_none(), "{again:?}");
}
