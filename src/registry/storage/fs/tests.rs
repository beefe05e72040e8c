//! Unit tests of the filesystem backend against a temp directory.

use super::*;

fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

fn body(parts: &[&'static [u8]]) -> ByteStream {
    let items: Vec<io::Result<Bytes>> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
    Box::pin(futures_util::stream::iter(items))
}

#[tokio::test]
async fn upload_commit_read_back_in_distribution_layout() {
    let dir = tempfile::tempdir().unwrap();
    let s = FsStorage::open(dir.path()).unwrap();
    let r = repo("team/app");
    let id = UploadId::new();
    s.upload_create(&r, id).await.unwrap();
    let a = s
        .upload_append(
            &r,
            id,
            0,
            Some(Algorithm::Sha256.hasher()),
            body(&[b"hello ", b"world"]),
        )
        .await
        .unwrap();
    assert_eq!(a.size, 11);
    let d = a.hasher.unwrap().finish();
    assert_eq!(d, Digest::sha256_of(b"hello world"));
    assert_eq!(
        s.upload_hash(&r, id, Algorithm::Sha256).await.unwrap(),
        (11, d.clone())
    );
    s.upload_commit(&r, id, &d).await.unwrap();

    let data = dir
        .path()
        .join("docker/registry/v2/blobs/sha256")
        .join(&d.hex()[..2])
        .join(d.hex())
        .join("data");
    assert_eq!(fs::read(data).unwrap(), b"hello world");
    let link = dir
        .path()
        .join("docker/registry/v2/repositories/team/app/_layers/sha256")
        .join(d.hex())
        .join("link");
    assert_eq!(fs::read_to_string(link).unwrap(), d.to_string());
    assert!(s.layer_linked(&r, &d).await.unwrap());
    assert_eq!(s.upload_size(&r, id).await.unwrap(), None);
    assert_eq!(
        s.list_repositories().await.unwrap(),
        vec!["team/app".to_string()]
    );
}

#[tokio::test]
async fn tags_and_manifest_unlink() {
    let dir = tempfile::tempdir().unwrap();
    let s = FsStorage::open(dir.path()).unwrap();
    let r = repo("a");
    let d = Digest::sha256_of(b"{}");
    s.write_small_blob(&d, Bytes::from_static(b"{}"))
        .await
        .unwrap();
    s.link_manifest(&r, &d).await.unwrap();
    for t in ["v1", "latest"] {
        s.set_tag(&r, &t.parse().unwrap(), &d).await.unwrap();
    }
    assert_eq!(
        s.list_tags(&r).await.unwrap().unwrap(),
        vec!["latest", "v1"]
    );
    assert!(s.delete_tag(&r, &"v1".parse().unwrap()).await.unwrap());
    assert!(s.manifest_linked(&r, &d).await.unwrap());
    assert!(s.unlink_manifest(&r, &d).await.unwrap());
    assert_eq!(
        s.list_tags(&r).await.unwrap().unwrap(),
        Vec::<String>::new()
    );
    assert!(!s.unlink_manifest(&r, &d).await.unwrap());
}

#[tokio::test]
async fn stale_temp_files_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("docker/registry/v2/_regproxy_tmp");
    fs::create_dir_all(&tmp).unwrap();
    fs::write(tmp.join("half-written"), b"x").unwrap();
    FsStorage::open(dir.path()).unwrap();
    assert!(!tmp.join("half-written").exists());
}

/// A body of odd-sized chunks spanning several write batches, one chunk
/// larger than a batch, then a failure: every byte before the failure is
/// stored in order and hashed, and the append resumes at the stored size.
#[tokio::test]
async fn append_spans_batches_and_keeps_bytes_before_a_client_failure() {
    use super::uploads::BATCH;
    let dir = tempfile::tempdir().unwrap();
    let s = FsStorage::open(dir.path()).unwrap();
    let r = repo("a/b");
    let id = UploadId::new();
    s.upload_create(&r, id).await.unwrap();
    let data: Vec<u8> = (0..(3 * BATCH + 12_345))
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let mut items: Vec<io::Result<Bytes>> = Vec::new();
    let mut at = 0;
    for len in [1, 1000, BATCH + 5, 77, BATCH - 3].into_iter().cycle() {
        if at >= data.len() {
            break;
        }
        let end = (at + len).min(data.len());
        items.push(Ok(Bytes::copy_from_slice(&data[at..end])));
        at = end;
    }
    items.push(Err(io::Error::other("client went away")));
    items.push(Ok(Bytes::from_static(b"never written")));
    let a = s
        .upload_append(
            &r,
            id,
            0,
            Some(Algorithm::Sha256.hasher()),
            Box::pin(futures_util::stream::iter(items)),
        )
        .await
        .unwrap();
    assert!(a.client_error.is_some());
    assert_eq!(a.size, data.len() as u64);
    assert_eq!(a.hasher.unwrap().finish(), Digest::sha256_of(&data));
    let path = dir
        .path()
        .join("docker/registry/v2/repositories/a/b/_uploads")
        .join(id.to_string())
        .join("data");
    assert_eq!(fs::read(&path).unwrap(), data);

    // Resuming at an earlier offset cuts the file there first.
    let a = s
        .upload_append(&r, id, 10, None, body(&[b"xyz"]))
        .await
        .unwrap();
    assert_eq!(a.size, 13);
    assert!(a.hasher.is_none());
    let mut expected = data[..10].to_vec();
    expected.extend_from_slice(b"xyz");
    assert_eq!(fs::read(&path).unwrap(), expected);
}

#[tokio::test]
async fn inventory_for_garbage_collection() {
    let dir = tempfile::tempdir().unwrap();
    let s = FsStorage::open(dir.path()).unwrap();
    let (a, b) = (repo("team/a"), repo("only/uploads"));
    let blob = Bytes::from_static(b"{\"a\":1}");
    let d = Digest::sha256_of(&blob);
    s.write_small_blob(&d, blob.clone()).await.unwrap();
    s.link_layer(&a, &d).await.unwrap();
    s.link_manifest(&a, &d).await.unwrap();
    let id = UploadId::new();
    s.upload_create(&b, id).await.unwrap();
    s.upload_append(&b, id, 0, None, body(&[b"12345"]))
        .await
        .unwrap();

    let blobs = s.list_blobs().await.unwrap();
    assert_eq!(blobs.len(), 1);
    assert_eq!((&blobs[0].digest, blobs[0].size), (&d, blob.len() as u64));
    assert_eq!(s.list_layers(&a).await.unwrap(), vec![d.clone()]);
    let revs = s.list_manifests(&a).await.unwrap();
    assert_eq!(revs.len(), 1);
    assert_eq!(revs[0].digest, d);
    // A repository with nothing but an upload (its first push crashed).
    let uploads = s.list_uploads().await.unwrap();
    assert_eq!(uploads.len(), 1);
    let (r, u) = &uploads[0];
    assert_eq!((r, u.id, u.size), (&b, id, 5));
    assert!(u.started.is_some(), "startedat is read back");

    assert!(s.delete_blob(&d).await.unwrap());
    assert!(
        !s.delete_blob(&d).await.unwrap(),
        "a second delete finds nothing"
    );
    assert_eq!(s.blob_size(&d).await.unwrap(), None);
    assert!(s.list_blobs().await.unwrap().is_empty());
}
