//! Uploads: sessions, monolithic and chunked uploads, `Content-Range`,
//! streamed `PATCH`, out-of-order and concurrent chunks, cancel.

use super::*;

async fn upload_session_start(p: Proto) {
    let s = Server::start(p).await;
    let r = s.post("/v2/up/app/blobs/uploads/").send().await;
    r.expect(202).expect_header("range", "0-0");
    let loc = r.location();
    assert!(
        loc.starts_with("/v2/up/app/blobs/uploads/"),
        "Location {loc}"
    );
    let uuid = r.header("docker-upload-uuid").expect("Docker-Upload-UUID");
    assert!(loc.ends_with(uuid), "Location {loc} vs uuid {uuid}");
    assert_eq!(uuid.len(), 36, "uuid {uuid}");
    // Without the trailing slash too (Docker clients send both forms).
    s.post("/v2/up/app/blobs/uploads").send().await.expect(202);
}

async fn monolithic_post_with_digest(p: Proto) {
    let s = Server::start(p).await;
    let blob = data(2048, 4);
    let d = sha256(&blob);
    let r = s
        .post(&format!("/v2/mono/app/blobs/uploads/?digest={d}"))
        .header("content-type", "application/octet-stream")
        .body(blob.clone())
        .send()
        .await;
    r.expect(201)
        .expect_header("location", &format!("/v2/mono/app/blobs/{d}"))
        .expect_header("docker-content-digest", &d);
    let r = s.get(&r.location()).send().await;
    r.expect(200);
    assert_eq!(r.body, blob);
}

async fn monolithic_post_then_put(p: Proto) {
    let s = Server::start(p).await;
    let blob = data(777, 5);
    let d = sha256(&blob);
    let loc = s.start_upload("mono/put").await;
    let r = s
        .put(&with_query(&loc, "digest", &d))
        .header("content-type", "application/octet-stream")
        .body(blob.clone())
        .send()
        .await;
    r.expect(201)
        .expect_header("location", &format!("/v2/mono/put/blobs/{d}"))
        .expect_header("docker-content-digest", &d);
    assert_eq!(s.get(&r.location()).send().await.expect(200).body, blob);
}

async fn empty_blob(p: Proto) {
    let s = Server::start(p).await;
    let d = sha256(b"");
    s.post(&format!("/v2/empty/app/blobs/uploads/?digest={d}"))
        .send()
        .await
        .expect(201);
    let r = s.get(&format!("/v2/empty/app/blobs/{d}")).send().await;
    r.expect(200).expect_header("content-length", "0");
    assert!(r.body.is_empty());
}

async fn chunked_upload_with_content_range(p: Proto) {
    let s = Server::start(p).await;
    let blob = data(25, 6);
    let d = sha256(&blob);
    let loc = s.start_upload("chunk/app").await;

    let r = s
        .patch(&loc)
        .header("content-type", "application/octet-stream")
        .header("content-range", "0-9")
        .body(blob[..10].to_vec())
        .send()
        .await;
    r.expect(202).expect_header("range", "0-9");
    assert!(r.header("docker-upload-uuid").is_some());
    let loc = r.location();
    assert!(loc.starts_with("/v2/chunk/app/blobs/uploads/"), "{loc}");

    let r = s
        .patch(&loc)
        .header("content-type", "application/octet-stream")
        .header("content-range", "10-24")
        .body(blob[10..].to_vec())
        .send()
        .await;
    r.expect(202).expect_header("range", "0-24");
    let loc = r.location();

    s.expect_upload_range(&loc, "0-24")
        .await
        .expect_header("location", &loc);

    let r = s.put(&with_query(&loc, "digest", &d)).send().await;
    r.expect(201)
        .expect_header("location", &format!("/v2/chunk/app/blobs/{d}"))
        .expect_header("docker-content-digest", &d);
    assert_eq!(s.get(&r.location()).send().await.expect(200).body, blob);
}

async fn streamed_patch_without_content_range(p: Proto) {
    let s = Server::start(p).await;
    let blob = data(3 * 1000 + 500 + 42, 7);
    let d = sha256(&blob);
    let loc = s.start_upload("stream/app").await;

    // Transfer-Encoding: chunked, as the Docker client streams layers.
    let r = s
        .patch(&loc)
        .chunked(blob[..3000].chunks(1000).map(<[u8]>::to_vec).collect())
        .send()
        .await;
    r.expect(202).expect_header("range", "0-2999");
    // With Content-Length and no Content-Range.
    let r = s
        .patch(&r.location())
        .body(blob[3000..3500].to_vec())
        .send()
        .await;
    r.expect(202).expect_header("range", "0-3499");
    // The final chunk in the closing PUT.
    let r = s
        .put(&with_query(&r.location(), "digest", &d))
        .header("content-type", "application/octet-stream")
        .body(blob[3500..].to_vec())
        .send()
        .await;
    r.expect(201).expect_header("docker-content-digest", &d);
    assert_eq!(s.get(&r.location()).send().await.expect(200).body, blob);
}

async fn out_of_order_chunks_are_416(p: Proto) {
    let s = Server::start(p).await;
    let blob = data(30, 8);
    let d = sha256(&blob);
    let loc = s.start_upload("order/app").await;
    let chunk = |range: &str, bytes: &[u8]| {
        s.patch(&loc)
            .header("content-type", "application/octet-stream")
            .header("content-range", range)
            .body(bytes.to_vec())
            .send()
    };

    // The first chunk must start at 0.
    let r = chunk("5-9", &blob[5..10]).await;
    r.expect(416);
    r.error_code().unwrap();
    chunk("0-9", &blob[..10]).await.expect(202);
    // A gap, and a retry of the accepted chunk.
    for (range, bytes) in [("20-29", &blob[20..]), ("0-9", &blob[..10])] {
        let r = chunk(range, bytes).await;
        r.expect(416);
        let code = r.error_code().unwrap();
        assert!(
            code == "BLOB_UPLOAD_INVALID" || code == "RANGE_INVALID",
            "{range}: {code}"
        );
    }
    // The status still says 0-9, and the upload goes on from there.
    s.expect_upload_range(&loc, "0-9").await;
    chunk("10-19", &blob[10..20])
        .await
        .expect(202)
        .expect_header("range", "0-19");
    // An out-of-order final chunk in the PUT is 416 too.
    let put = |range: &str, bytes: &[u8]| {
        s.put(&with_query(&loc, "digest", &d))
            .header("content-type", "application/octet-stream")
            .header("content-range", range)
            .body(bytes.to_vec())
            .send()
    };
    put("25-29", &blob[25..]).await.expect(416);
    s.expect_upload_range(&loc, "0-19").await;
    put("20-29", &blob[20..]).await.expect(201);
    assert_eq!(
        s.get(&format!("/v2/order/app/blobs/{d}"))
            .send()
            .await
            .expect(200)
            .body,
        blob
    );
}

async fn concurrent_chunks_on_one_session_are_ordered(p: Proto) {
    // A client retrying a chunk while the first attempt is still running:
    // exactly one is appended, the other is out of order.
    let s = Server::start(p).await;
    let blob = data(100_000, 16);
    let loc = s.start_upload("race/app").await;
    let chunk = || {
        s.patch(&loc)
            .header("content-range", "0-99999")
            .body(blob.clone())
            .send()
    };
    let (a, b) = tokio::join!(chunk(), chunk());
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 416], "{} / {}", a.text(), b.text());
    s.expect_upload_range(&loc, "0-99999").await;
    s.put(&with_query(&loc, "digest", &sha256(&blob)))
        .send()
        .await
        .expect(201);
}

async fn upload_cancel(p: Proto) {
    let s = Server::start(p).await;
    let loc = s.start_upload("cancel/app").await;
    s.patch(&loc)
        .body(b"partial".to_vec())
        .send()
        .await
        .expect(202);
    s.delete(&loc).send().await.expect(204);
    s.get(&loc)
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    s.patch(&loc)
        .body(b"more".to_vec())
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    s.put(&with_query(&loc, "digest", &sha256(b"partial")))
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    s.delete(&loc)
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
}

both_protocols!(
    upload_session_start,
    monolithic_post_with_digest,
    monolithic_post_then_put,
    empty_blob,
    chunked_upload_with_content_range,
    streamed_patch_without_content_range,
    out_of_order_chunks_are_416,
    concurrent_chunks_on_one_session_are_ordered,
    upload_cancel,
);
