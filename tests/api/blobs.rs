//! Blobs: `GET`, `HEAD` (with `Range`), `DELETE`, unknown blobs, and blobs
//! scoped to their repository.

use super::*;

async fn blob_get_and_head(p: Proto) {
    let s = Server::start(p).await;
    let blob = data(3000, 1);
    let d = s.push_blob("blob/app", &blob).await;
    let path = format!("/v2/blob/app/blobs/{d}");

    let r = s.get(&path).send().await;
    r.expect(200)
        .expect_header("docker-content-digest", &d)
        .expect_header("content-length", "3000");
    assert_eq!(r.body, blob);

    let r = s.head(&path).send().await;
    r.expect(200)
        .expect_header("docker-content-digest", &d)
        .expect_header("content-length", "3000");
    assert!(r.body.is_empty());
}

async fn blob_range_requests(p: Proto) {
    let s = Server::start(p).await;
    let blob = data(100, 2);
    let d = s.push_blob("blob/range", &blob).await;
    let path = format!("/v2/blob/range/blobs/{d}");

    for (range, content_range, slice) in [
        ("bytes=10-19", "bytes 10-19/100", 10..20),
        ("bytes=0-0", "bytes 0-0/100", 0..1),
        ("bytes=90-", "bytes 90-99/100", 90..100),
        ("bytes=-5", "bytes 95-99/100", 95..100),
        ("bytes=95-200", "bytes 95-99/100", 95..100),
        ("bytes=-500", "bytes 0-99/100", 0..100),
    ] {
        let r = s.get(&path).header("range", range).send().await;
        r.expect(206)
            .expect_header("content-range", content_range)
            .expect_header("content-length", &slice.len().to_string())
            .expect_header("docker-content-digest", &d);
        assert_eq!(r.body, blob[slice], "{range}");
    }

    for range in ["bytes=100-", "bytes=200-300", "bytes=100-100"] {
        let r = s.get(&path).header("range", range).send().await;
        r.expect_error(416, "RANGE_INVALID")
            .expect_header("content-range", "bytes */100");
    }
}

async fn blob_delete(p: Proto) {
    let s = Server::start(p).await;
    let d = s.push_blob("blob/del", b"delete me").await;
    let path = format!("/v2/blob/del/blobs/{d}");
    s.delete(&path).send().await.expect(202);
    s.expect_unknown(&path, "BLOB_UNKNOWN").await;
}

async fn unknown_blob_is_blob_unknown(p: Proto) {
    let s = Server::start(p).await;
    s.push_blob("blob/known", b"something").await;
    let d = sha256(b"never pushed");
    for repo in ["blob/known", "no/such/repo"] {
        let path = format!("/v2/{repo}/blobs/{d}");
        s.expect_unknown(&path, "BLOB_UNKNOWN").await;
    }
}

async fn blob_is_scoped_to_its_repository(p: Proto) {
    let s = Server::start(p).await;
    let blob = data(500, 3);
    let d = s.push_blob("team-a/app", &blob).await;
    s.push_blob("team-b/app", b"team b has a repository too")
        .await;
    let path = format!("/v2/team-b/app/blobs/{d}");
    s.get(&path).send().await.expect_error(404, "BLOB_UNKNOWN");
    s.head(&path).send().await.expect_head_error(404);
    s.post(&format!(
        "/v2/team-b/app/blobs/uploads/?mount={d}&from=team-a/app"
    ))
    .send()
    .await
    .expect(201);
    let r = s.get(&path).send().await;
    r.expect(200);
    assert_eq!(r.body, blob);
}

both_protocols!(
    blob_get_and_head,
    blob_range_requests,
    blob_delete,
    unknown_blob_is_blob_unknown,
    blob_is_scoped_to_its_repository,
);
