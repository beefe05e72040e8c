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
