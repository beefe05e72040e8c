//! Uploads: sessions, monolithic and chunked uploads, `Content-Range`,
//! out-of-order chunks, cancel, unknown ids, digest errors, sha512.

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

async fn unknown_upload_ids(p: Proto) {
    let s = Server::start(p).await;
    let d = sha256(b"x");
    let unknown = "/v2/up/app/blobs/uploads/0b0e2d42-5b8b-4f5e-9a8b-0123456789ab";
    let malformed = "/v2/up/app/blobs/uploads/not-an-upload-id";
    for path in [unknown, malformed] {
        s.get(path)
            .send()
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        s.patch(path)
            .body(b"x".to_vec())
            .send()
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        s.put(&with_query(path, "digest", &d))
            .body(b"x".to_vec())
            .send()
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        s.delete(path)
            .send()
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    }

    // A session belongs to the repository it was started in.
    let loc = s.start_upload("up/app").await;
    let foreign = loc.replace("/v2/up/app/", "/v2/up/other/");
    s.get(&foreign)
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");

    // A completed session is gone.
    s.put(&with_query(&loc, "digest", &d))
        .body(b"x".to_vec())
        .send()
        .await
        .expect(201);
    s.get(&loc)
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    s.patch(&loc)
        .body(b"y".to_vec())
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
}

async fn upload_digest_errors(p: Proto) {
    let s = Server::start(p).await;
    let blob = b"the real content".to_vec();
    let wrong = sha256(b"something else");
    let path = format!("/v2/dig/app/blobs/{wrong}");
    // The blob with `?digest=`: in the closing PUT of the session at `loc`,
    // or in a monolithic POST.
    let put = |loc: &str, digest: &str| {
        s.put(&with_query(loc, "digest", digest))
            .body(blob.clone())
            .send()
    };
    let post = |digest: &str| {
        s.post(&format!("/v2/dig/app/blobs/uploads/?digest={digest}"))
            .body(blob.clone())
            .send()
    };

    // Mismatch on the closing PUT; nothing becomes readable.
    let loc = s.start_upload("dig/app").await;
    put(&loc, &wrong).await.expect_error(400, "DIGEST_INVALID");
    s.get(&path).send().await.expect_error(404, "BLOB_UNKNOWN");

    // Mismatch on a monolithic POST.
    post(&wrong).await.expect_error(400, "DIGEST_INVALID");
    s.get(&path).send().await.expect_error(404, "BLOB_UNKNOWN");

    // The closing PUT without ?digest=.
    let loc = s.start_upload("dig/app").await;
    s.put(&loc)
        .body(blob.clone())
        .send()
        .await
        .expect_error(400, "DIGEST_INVALID");

    // Malformed or unsupported digests.
    for bad in [
        "sha256:xyz",
        "sha256:",
        "notadigest",
        "sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "",
    ] {
        let loc = s.start_upload("dig/app").await;
        put(&loc, bad).await.expect_error(400, "DIGEST_INVALID");
        post(bad).await.expect_error(400, "DIGEST_INVALID");
    }
}

async fn sha512_blobs(p: Proto) {
    let s = Server::start(p).await;
    let blob = data(5000, 9);
    let d = sha512(&blob);

    let r = s
        .post(&format!("/v2/sha/app/blobs/uploads/?digest={d}"))
        .body(blob.clone())
        .send()
        .await;
    r.expect(201)
        .expect_header("location", &format!("/v2/sha/app/blobs/{d}"))
        .expect_header("docker-content-digest", &d);
    let r = s.get(&format!("/v2/sha/app/blobs/{d}")).send().await;
    r.expect(200).expect_header("docker-content-digest", &d);
    assert_eq!(r.body, blob);
    s.head(&format!("/v2/sha/app/blobs/{d}"))
        .send()
        .await
        .expect(200)
        .expect_header("content-length", "5000");

    // Chunked, into another repository.
    let loc = s.start_upload("sha/chunked").await;
    let r = s
        .patch(&loc)
        .header("content-range", "0-2999")
        .body(blob[..3000].to_vec())
        .send()
        .await;
    r.expect(202);
    let r = s
        .put(&with_query(&r.location(), "digest", &d))
        .header("content-range", "3000-4999")
        .body(blob[3000..].to_vec())
        .send()
        .await;
    r.expect(201).expect_header("docker-content-digest", &d);
    assert_eq!(
        s.get(&format!("/v2/sha/chunked/blobs/{d}"))
            .send()
            .await
            .expect(200)
            .body,
        blob
    );

    // A sha512 mismatch.
    let loc = s.start_upload("sha/app").await;
    s.put(&with_query(&loc, "digest", &sha512(b"other")))
        .body(blob.clone())
        .send()
        .await
        .expect_error(400, "DIGEST_INVALID");
}

async fn content_range_and_length_mismatch_is_size_invalid(p: Proto) {
    let s = Server::start(p).await;
    let loc = s.start_upload("size/app").await;
    s.patch(&loc)
        .header("content-range", "0-9")
        .body(b"12345".to_vec())
        .send()
        .await
        .expect_error(400, "SIZE_INVALID");
    // Nothing was stored; a correct chunk still works.
    s.expect_upload_range(&loc, "0-0").await;
    s.patch(&loc)
        .header("content-range", "0-4")
        .body(b"12345".to_vec())
        .send()
        .await
        .expect(202)
        .expect_header("range", "0-4");
}

async fn large_blob_in_chunks_round_trips(p: Proto) {
    let s = Server::start(p).await;
    let blob = data(4 * MIB + 12_345, 10);
    let d = sha256(&blob);

    // PATCHes of 1 MiB with Content-Range; the tail in the closing PUT.
    let mut loc = s.start_upload("big/app").await;
    let mut offset = 0;
    while blob.len() - offset > MIB {
        let end = offset + MIB;
        let r = s
            .patch(&loc)
            .header("content-type", "application/octet-stream")
            .header("content-range", &format!("{offset}-{}", end - 1))
            .body(blob[offset..end].to_vec())
            .send()
            .await;
        r.expect(202)
            .expect_header("range", &format!("0-{}", end - 1));
        loc = r.location();
        offset = end;
    }
    let r = s
        .put(&with_query(&loc, "digest", &d))
        .header("content-range", &format!("{offset}-{}", blob.len() - 1))
        .body(blob[offset..].to_vec())
        .send()
        .await;
    r.expect(201).expect_header("docker-content-digest", &d);

    let path = format!("/v2/big/app/blobs/{d}");
    let r = s.get(&path).send().await;
    r.expect(200)
        .expect_header("content-length", &blob.len().to_string());
    assert!(r.body == blob, "4 MiB blob differs after the round trip");
    // A range across a chunk boundary.
    let r = s
        .get(&path)
        .header("range", &format!("bytes={}-{}", MIB - 10, MIB + 9))
        .send()
        .await;
    r.expect(206);
    assert_eq!(r.body, blob[MIB - 10..MIB + 10]);

    // The same blob streamed in one chunked PATCH, into another repository.
    let loc = s.start_upload("big/streamed").await;
    let r = s
        .patch(&loc)
        .chunked(blob.chunks(256 * 1024).map(<[u8]>::to_vec).collect())
        .send()
        .await;
    r.expect(202)
        .expect_header("range", &format!("0-{}", blob.len() - 1));
    s.put(&with_query(&r.location(), "digest", &d))
        .send()
        .await
        .expect(201);
    let r = s.get(&format!("/v2/big/streamed/blobs/{d}")).send().await;
    r.expect(200);
    assert!(r.body == blob, "streamed 4 MiB blob differs");
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
    unknown_upload_ids,
    upload_digest_errors,
    sha512_blobs,
    content_range_and_length_mismatch_is_size_invalid,
    large_blob_in_chunks_round_trips,
);
